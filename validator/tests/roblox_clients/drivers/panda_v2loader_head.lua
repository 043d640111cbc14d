-- Driver: Panda V2LoaderLib @ 6edee22 (HEAD; POST https://secure.pandauth.com/v2_validation, a
-- hard-coded host that the prelude rewrites to KEYWARD_BASE), run unmodified.
-- Environment (besides the prelude's):
--   KEYWARD_SERVICE   the service id given to PandaV2.Configure (required)
--   KEYWARD_KEY       the key to validate
--   KEYWARD_STEPS     comma-separated, from: validate, validate_premium, get_key, hwid
--                     (default "validate")
-- validate/validate_premium return [authenticated (bool), data (the decoded body, as is)].
local env = KEYWARD.env
local PandaV2 = KEYWARD.load_client("panda/V2LoaderLib.6edee22.lua")
PandaV2.Configure(env("KEYWARD_SERVICE") or error("KEYWARD_SERVICE is not set"))

local key = env("KEYWARD_KEY", "")
local steps = {
    validate = function()
        return PandaV2.Validate(key)
    end,
    validate_premium = function()
        return PandaV2.Validate(key, true)
    end,
    -- https://ads.pandauth.com/getkey/<service>?hwid=<hwid>, copied to the clipboard (no HTTP)
    get_key = function()
        return PandaV2.GetKey()
    end,
    hwid = function()
        return PandaV2.HWID()
    end,
}
for _, name in ipairs(KEYWARD.steps("validate")) do
    KEYWARD.step(name, steps[name] or error("unknown step " .. name))
end
KEYWARD.finish()
