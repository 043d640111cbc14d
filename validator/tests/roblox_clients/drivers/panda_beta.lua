-- Driver: Panda PandaBetaLib.lua (legacy GET https://pandadevelopment.net/v2_validation, preceded
-- by GET /serviceapi?service=S&command=getconfig), run unmodified; the prelude rewrites the host.
-- Environment (besides the prelude's):
--   KEYWARD_SERVICE   the service id (required)
--   KEYWARD_KEY       the key to validate
--   KEYWARD_FAILSAFE  "1": getgenv().AutomaticFailsafe = true after loading (a non-200 answer then
--                     counts as valid)
--   KEYWARD_STEPS     comma-separated, from: validate, validate_premium, validate_normal, keyless,
--                     authorized, authorized_premium, get_key, get_link, reset_hwid, version
--                     (default "validate")
-- Validation steps return [bool]. The HWID it sends depends on getconfig's AuthMode:
--   hwidonly → GetClientId() (KEYWARD_CLIENT_ID, default KEYWARD_HWID); playerid → UserId;
--   hwidplayer → GetClientId() .. UserId; fingerprint → body of GET /fingerprint; anything else
--   → UserId; getconfig failing (non-200 or not JSON) → GetClientId().
-- Its wait(3) per validation is a no-op here (counted in `waited`).
local env = KEYWARD.env
local PandaAuth = KEYWARD.load_client("panda/PandaBetaLib.lua")
if env("KEYWARD_FAILSAFE") == "1" then
    getgenv().AutomaticFailsafe = true
end

local service = env("KEYWARD_SERVICE") or error("KEYWARD_SERVICE is not set")
local key = env("KEYWARD_KEY", "")
local steps = {
    validate = function()
        return PandaAuth:ValidateKey(service, key)
    end,
    validate_premium = function()
        return PandaAuth:ValidatePremiumKey(service, key)
    end,
    validate_normal = function()
        return PandaAuth:ValidateNormalKey(service, key)
    end,
    -- ValidateKey(service, "keyless")
    keyless = function()
        return PandaAuth:Authenticate_Keyless(service)
    end,
    authorized = function()
        return PandaAuth:AuthorizedKyRBLX(service, key, false)
    end,
    authorized_premium = function()
        return PandaAuth:AuthorizedKyRBLX(service, key, true)
    end,
    -- https://pandadevelopment.net/getkey?service=S&hwid=H (getconfig first; no other HTTP)
    get_key = function()
        return PandaAuth:GetKey(service)
    end,
    get_link = function()
        return PandaAuth:GetLink(service)
    end,
    -- POST /serviceapi/edit/hwid/?service=<lower-cased S>&key=K&newhwid=<GetClientId()>; returns nothing
    reset_hwid = function()
        return PandaAuth:ResetHardwareID(service, key)
    end,
    version = function()
        return PandaAuth:Version()
    end,
}
for _, name in ipairs(KEYWARD.steps("validate")) do
    KEYWARD.step(name, steps[name] or error("unknown step " .. name))
end
KEYWARD.finish()
