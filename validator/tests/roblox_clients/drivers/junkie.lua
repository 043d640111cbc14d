-- Driver: Junkie's SDK library.lua (POST {base_url}/verifyOpen and /getKeyOpen), run unmodified.
-- Environment (besides the prelude's):
--   KEYWARD_SERVICE     Junkie.service (required for every step)
--   KEYWARD_IDENTIFIER  Junkie.identifier (optional: check_key then sends "unknown"; get_key_link
--                       raises "identifier not set")
--   KEYWARD_PROVIDER    Junkie.provider (optional)
--   KEYWARD_KEY         the key for check_key
--   KEYWARD_BASE_URL    Junkie.base_url: unset → KEYWARD_BASE .. "/api/v1/whitelist" (the knob);
--                       "default" → left at https://api.jnkie.com/api/v1/whitelist (host rewrite)
--   KEYWARD_SCRIPT_ID   Junkie.script_id, for load_script
--   KEYWARD_STEPS       comma-separated, from: check_key, get_key_link, load_script
--                       (default "check_key")
-- check_key returns [table]: the decoded 200 body as is, or {valid = false, error = "http N"};
-- get_key_link returns [link] (a trailing nil is not printed) or [null, "RATE_LIMITTED" | body].
local env = KEYWARD.env
local Junkie = KEYWARD.load_client("junkie/library.lua")
Junkie.service = env("KEYWARD_SERVICE") or error("KEYWARD_SERVICE is not set")
Junkie.identifier = env("KEYWARD_IDENTIFIER")
Junkie.provider = env("KEYWARD_PROVIDER")
Junkie.script_id = env("KEYWARD_SCRIPT_ID")
local base_url = env("KEYWARD_BASE_URL", (KEYWARD.base or "") .. "/api/v1/whitelist")
if base_url ~= "default" then
    Junkie.base_url = base_url
end

local key = env("KEYWARD_KEY", "")
local steps = {
    check_key = function()
        return Junkie.check_key(key)
    end,
    get_key_link = function()
        return Junkie.get_key_link()
    end,
    load_script = function()
        return Junkie.load_script()
    end,
}
for _, name in ipairs(KEYWARD.steps("check_key")) do
    KEYWARD.step(name, steps[name] or error("unknown step " .. name))
end
KEYWARD.finish()
