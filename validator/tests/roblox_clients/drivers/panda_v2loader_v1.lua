-- Driver: Panda V2LoaderLib @ aacdee3 (POST {URL}/api/v1/keys/validate), run unmodified.
-- Run after prelude.lua. Environment (besides the prelude's):
--   KEYWARD_SERVICE   ServiceID given to PandaKey.Config (required)
--   KEYWARD_KEY       the key to validate
--   KEYWARD_URL       Config{URL}: unset → KEYWARD_BASE (the library's URL knob);
--                     "default" → URL omitted, so the library's https://new.pandadevelopment.net
--                     is used and the prelude's host rewrite applies
--   KEYWARD_AUTH_HWID Config{AuthHWID} (optional; otherwise the library calls gethwid)
--   KEYWARD_STEPS     comma-separated, from: validate, validate_premium, get_key_url, open_get_key
--                     (default "validate")
-- Each step prints {step, ok, result = [return values], http = [...], clipboard = [...]}; then
-- a final {step = "done"}.
local env = KEYWARD.env
local PandaKey = KEYWARD.load_client("panda/V2LoaderLib.aacdee3.lua")

local url = env("KEYWARD_URL", KEYWARD.base)
if url == "default" then
    url = nil
end
PandaKey.Config({
    ServiceID = env("KEYWARD_SERVICE") or error("KEYWARD_SERVICE is not set"),
    URL = url,
    AuthHWID = env("KEYWARD_AUTH_HWID"),
})

local key = env("KEYWARD_KEY", "")
local steps = {
    -- → {success, message, isPremium, expireDate}
    validate = function()
        return PandaKey.Validate(key)
    end,
    validate_premium = function()
        return PandaKey.Validate(key, true)
    end,
    -- → base .. "/getkey/" .. ServiceID .. "?hwid=" .. hwid (no HTTP)
    get_key_url = function()
        return PandaKey.GetKeyURL()
    end,
    -- the same URL, also copied to the clipboard
    open_get_key = function()
        return PandaKey.OpenGetKey()
    end,
}
for _, name in ipairs(KEYWARD.steps("validate")) do
    KEYWARD.step(name, steps[name] or error("unknown step " .. name))
end
KEYWARD.finish()
