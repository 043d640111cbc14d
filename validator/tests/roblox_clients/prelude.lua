-- Keyward test stand-in for the Roblox client and an executor's globals (spec: shared/specs/
-- roblox-key-systems.md §4). Loaded before a driver, so that the third-party key-system libraries
-- beside this file run unmodified under plain Lua 5.1 (Debian lua5.1 + lua-cjson, HTTP via curl).
--
-- Environment:
--   KEYWARD_BASE          the server under test, e.g. http://127.0.0.1:8080 (loopback only; required)
--   KEYWARD_HWID          what gethwid() returns (default "keyward-stand-in-hwid")
--   KEYWARD_CLIENT_ID     what RbxAnalyticsService:GetClientId() returns (default: KEYWARD_HWID)
--   KEYWARD_NO_GETHWID    "1": gethwid is nil (the libraries then fall back to GetClientId)
--   KEYWARD_USER_ID       Players.LocalPlayer.UserId (default 1000001; 271635429 is refused: it is
--                         PandaBetaLib's hard-wired "owner, always valid" id)
--   KEYWARD_USER_NAME     Players.LocalPlayer.Name (default "KeywardTester")
--   KEYWARD_EXTRA_HOSTS   more comma-separated host names to send to the server under test
--   KEYWARD_HTTP_TIMEOUT  seconds per HTTP exchange (default 20)
--   KEYWARD_FINGERPRINT_HEADER  a header name, e.g. "Syn-Fingerprint": every request() then carries
--                         it with KEYWARD_HWID as its value, as real executors add their fingerprint
--                         to every request (unless the library sets that header itself); recorded
--                         per exchange as `executor_headers`. Unset: no such header
--   KEYWARD_CLIENTS_DIR   where the vendored libraries are (default: this file's directory)
--
-- Network rule: URLs on pandadevelopment.net, {new,utility,auth}.pandadevelopment.net,
-- secure.pandauth.com and api.jnkie.com (http or https) go to KEYWARD_BASE with path and query kept;
-- loopback URLs go where they point; every other host (api.ipify.org included) is refused:
-- request() answers {StatusCode = 0, Success = false, Body = ""} without any traffic.
--
-- Output: a library's print() goes to stderr ("[print] ..."), and so does warn(); stdout carries
-- only what a driver emits with KEYWARD.emit (one JSON object per line).

local cjson = require("cjson")

local KEYWARD = {}
_G.KEYWARD = KEYWARD

local stdout, stderr = io.stdout, io.stderr
local raw_print = print

local function env(name, default)
    local v = os.getenv(name)
    if v == nil or v == "" then
        return default
    end
    return v
end

---------------------------------------------------------------------------------------------------
-- JSON, as Roblox's HttpService does it
---------------------------------------------------------------------------------------------------

local escapes = {
    ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
    ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function encode_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        return escapes[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
end

local function is_array(t)
    local n = 0
    for k in pairs(t) do
        if type(k) ~= "number" or k < 1 or k ~= math.floor(k) then
            return false
        end
        n = n + 1
    end
    for i = 1, n do
        if t[i] == nil then
            return false
        end
    end
    return true
end

-- `lenient` (for the driver's own output): functions and other host values become strings
-- instead of raising.
local function encode(v, lenient, seen)
    local tv = type(v)
    if v == nil or v == cjson.null then
        return "null"
    elseif tv == "boolean" then
        return tostring(v)
    elseif tv == "number" then
        if v ~= v or v == math.huge or v == -math.huge then
            if lenient then
                return "null"
            end
            error("JSONEncode: cannot encode NaN or infinity", 3)
        end
        if v == math.floor(v) and math.abs(v) < 2 ^ 53 then
            return string.format("%d", v)
        end
        for digits = 14, 17 do
            local s = string.format("%." .. digits .. "g", v)
            if tonumber(s) == v then
                return s
            end
        end
        return string.format("%.17g", v)
    elseif tv == "string" then
        return encode_string(v)
    elseif tv == "table" then
        seen = seen or {}
        if seen[v] then
            error("JSONEncode: tables cannot be cyclic", 3)
        end
        seen[v] = true
        local out = {}
        -- Roblox encodes an empty table as an array.
        if next(v) == nil then
            seen[v] = nil
            return "[]"
        end
        if is_array(v) then
            for i = 1, #v do
                out[i] = encode(v[i], lenient, seen)
            end
            seen[v] = nil
            return "[" .. table.concat(out, ",") .. "]"
        end
        local keys = {}
        for k in pairs(v) do
            keys[#keys + 1] = tostring(k)
        end
        table.sort(keys)
        for _, k in ipairs(keys) do
            local val = v[k]
            if val == nil then
                val = v[tonumber(k)]
            end
            local tval = type(val)
            if tval == "function" or tval == "userdata" and val ~= cjson.null or tval == "thread" then
                if lenient then
                    out[#out + 1] = encode_string(k) .. ":" .. encode_string(tostring(val))
                end
            else
                out[#out + 1] = encode_string(k) .. ":" .. encode(val, lenient, seen)
            end
        end
        seen[v] = nil
        return "{" .. table.concat(out, ",") .. "}"
    elseif lenient then
        return encode_string(tostring(v))
    end
    error("JSONEncode: cannot encode a " .. tv, 3)
end

-- Roblox's JSONDecode drops nulls: `x.Note or default` must see nil, not a truthy cjson.null.
local function strip_nulls(v)
    if v == cjson.null then
        return nil
    end
    if type(v) == "table" then
        for k, val in pairs(v) do
            if val == cjson.null then
                v[k] = nil
            else
                strip_nulls(val)
            end
        end
    end
    return v
end

local function json_decode(s)
    if type(s) ~= "string" then
        error("Can't parse JSON: not a string (" .. type(s) .. ")", 2)
    end
    local ok, v = pcall(cjson.decode, s)
    if not ok then
        error("Can't parse JSON", 2)
    end
    return strip_nulls(v)
end

KEYWARD.json_encode = function(v)
    return encode(v, false)
end
KEYWARD.json_decode = json_decode

---------------------------------------------------------------------------------------------------
-- Records, and the driver's output
---------------------------------------------------------------------------------------------------

KEYWARD.http = {}          -- every exchange, in order (see `record` below)
KEYWARD.clipboard = {}     -- every setclipboard/toclipboard text
KEYWARD.warnings = {}      -- every warn() line
KEYWARD.notifications = {} -- every StarterGui:SetCore call: {name, Title, Text}
KEYWARD.kicks = {}         -- every LocalPlayer:Kick message
KEYWARD.waited = 0         -- seconds that wait/task.wait/delay would have slept

-- One JSON object on its own line of stdout.
function KEYWARD.emit(t)
    stdout:write(encode(t, true), "\n")
    stdout:flush()
end

local function log(prefix, ...)
    local parts = {}
    for i = 1, select("#", ...) do
        parts[#parts + 1] = tostring((select(i, ...)))
    end
    stderr:write(prefix, table.concat(parts, " "), "\n")
end

print = function(...)
    log("[print] ", ...)
end
KEYWARD.raw_print = raw_print

warn = function(...)
    local parts = {}
    for i = 1, select("#", ...) do
        parts[#parts + 1] = tostring((select(i, ...)))
    end
    KEYWARD.warnings[#KEYWARD.warnings + 1] = table.concat(parts, " ")
    log("[warn] ", ...)
end

---------------------------------------------------------------------------------------------------
-- HTTP: host rewrite, then curl
---------------------------------------------------------------------------------------------------

local REWRITTEN = {
    ["pandadevelopment.net"] = true,
    ["new.pandadevelopment.net"] = true,
    ["utility.pandadevelopment.net"] = true,
    ["auth.pandadevelopment.net"] = true,
    ["secure.pandauth.com"] = true,
    ["api.jnkie.com"] = true,
}
for h in env("KEYWARD_EXTRA_HOSTS", ""):gmatch("[^,%s]+") do
    REWRITTEN[h:lower()] = true
end

local function split_url(url)
    local scheme, authority, rest = tostring(url):match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
    if not scheme then
        return nil
    end
    local host = authority:gsub("^.*@", "")
    if host:sub(1, 1) == "[" then
        host = host:match("^(%[[^%]]*%])") or host
    else
        host = host:gsub(":%d*$", "")
    end
    return scheme:lower(), host:lower(), rest
end

local function is_loopback(host)
    return host == "localhost" or host == "[::1]" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

local BASE = env("KEYWARD_BASE")
if BASE then
    BASE = BASE:gsub("/+$", "")
    local scheme, host = split_url(BASE)
    if not scheme or (scheme ~= "http" and scheme ~= "https") or not is_loopback(host) then
        error("KEYWARD_BASE must be an http(s) URL on loopback, not " .. BASE)
    end
end
KEYWARD.base = BASE

-- Where a URL really goes: the target URL, or nil and why not.
function KEYWARD.route(url)
    local scheme, host, rest = split_url(url)
    if not scheme or (scheme ~= "http" and scheme ~= "https") then
        return nil, "not an http(s) URL"
    end
    if REWRITTEN[host] then
        if not BASE then
            return nil, "KEYWARD_BASE is not set"
        end
        if rest == "" then
            rest = "/"
        elseif rest:sub(1, 1) ~= "/" then
            rest = "/" .. rest
        end
        return BASE .. rest
    end
    if is_loopback(host) then
        return url
    end
    return nil, "host " .. host .. " is not reachable from the stand-in"
end

local function shell_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
    local f = io.open(path, "rb")
    if not f then
        return ""
    end
    local s = f:read("*a")
    f:close()
    return s
end

local function write_file(path, data)
    local f = assert(io.open(path, "wb"))
    f:write(data)
    f:close()
end

local TIMEOUT = tonumber(env("KEYWARD_HTTP_TIMEOUT", "20")) or 20
local FINGERPRINT_HEADER = env("KEYWARD_FINGERPRINT_HEADER")

-- The headers an executor adds to a library's own (its fingerprint, when asked for), or nil.
local function executor_headers(headers)
    if not FINGERPRINT_HEADER then
        return nil
    end
    for k in pairs(headers) do
        if tostring(k):lower() == FINGERPRINT_HEADER:lower() then
            return nil
        end
    end
    return { [FINGERPRINT_HEADER] = env("KEYWARD_HWID", "keyward-stand-in-hwid") }
end

-- Header names as the server sent them, lower-cased; the last response of a redirect-free
-- exchange (a 100 Continue block is skipped).
local function parse_headers(raw)
    local blocks = {}
    for block in (raw:gsub("\r\n", "\n") .. "\n\n"):gmatch("(.-)\n\n") do
        if block:match("^HTTP/") then
            blocks[#blocks + 1] = block
        end
    end
    local headers, reason = {}, ""
    local last = blocks[#blocks]
    if last then
        reason = last:match("^HTTP/%S+%s+%d+%s*([^\n]*)") or ""
        for line in last:gmatch("[^\n]+") do
            local k, v = line:match("^([^:%s]+):%s*(.-)%s*$")
            if k then
                headers[k:lower()] = v
            end
        end
    end
    return headers, reason
end

local function curl(method, target, headers, body)
    local body_file, head_file, out_file, err_file =
        os.tmpname(), os.tmpname(), os.tmpname(), os.tmpname()
    local args = {
        "curl", "-sS", "--noproxy", "'*'", "--max-time", tostring(TIMEOUT), "--connect-timeout", "5",
        "-X", shell_quote(method), "-D", shell_quote(head_file), "-o", shell_quote(out_file),
        "-w", "'%{http_code}'",
        -- Roblox's own User-Agent, unless the caller sets one (PandaBetaLib sends "pandaauth").
        "-A", "'Roblox/WinInet'",
    }
    local has_content_type = false
    for k, v in pairs(headers) do
        if tostring(k):lower() == "content-type" then
            has_content_type = true
        end
        args[#args + 1] = "-H"
        args[#args + 1] = shell_quote(tostring(k) .. ": " .. tostring(v))
    end
    if body ~= nil then
        write_file(body_file, body)
        args[#args + 1] = "--data-binary"
        args[#args + 1] = shell_quote("@" .. body_file)
        if not has_content_type then
            -- curl would otherwise add application/x-www-form-urlencoded.
            args[#args + 1] = "-H"
            args[#args + 1] = "'Content-Type:'"
        end
    elseif method ~= "GET" and method ~= "HEAD" then
        args[#args + 1] = "-H"
        args[#args + 1] = "'Content-Length: 0'"
    end
    args[#args + 1] = "--"
    args[#args + 1] = shell_quote(target)
    local cmd = table.concat(args, " ") .. " 2>" .. shell_quote(err_file)
    local p = assert(io.popen(cmd, "r"))
    local code = p:read("*a") or ""
    p:close()
    local status = tonumber(code:match("%d+")) or 0
    local resp_headers, reason = parse_headers(read_file(head_file))
    local resp_body = read_file(out_file)
    local err = read_file(err_file):gsub("%s+$", "")
    for _, f in ipairs({ body_file, head_file, out_file, err_file }) do
        os.remove(f)
    end
    return status, resp_body, resp_headers, reason, err
end

-- The executor's request(): {StatusCode, StatusMessage, Success, Headers, Body}.
function KEYWARD.request(opts)
    if type(opts) ~= "table" then
        error("request expects a table", 2)
    end
    local url = opts.Url or opts.url
    local method = tostring(opts.Method or opts.method or "GET"):upper()
    local headers = opts.Headers or opts.headers or {}
    local body = opts.Body or opts.body
    if body ~= nil then
        body = tostring(body)
    end
    local entry = { method = method, url = tostring(url), headers = {}, body = body }
    for k, v in pairs(headers) do
        entry.headers[tostring(k)] = tostring(v)
    end
    local extra = executor_headers(headers)
    if extra then
        entry.executor_headers = extra
        local merged = {}
        for k, v in pairs(headers) do
            merged[k] = v
        end
        for k, v in pairs(extra) do
            merged[k] = v
        end
        headers = merged
    end
    local target, why = KEYWARD.route(url)
    local resp
    if not target then
        entry.refused = why
        entry.status = 0
        resp = { StatusCode = 0, StatusMessage = why, Success = false, Headers = {}, Body = "" }
    else
        entry.target = target
        local status, resp_body, resp_headers, reason, err = curl(method, target, headers, body)
        entry.status = status
        entry.response = resp_body
        if status == 0 then
            entry.error = err
            reason = err
        end
        resp = {
            StatusCode = status,
            StatusMessage = reason,
            Success = status >= 200 and status < 300,
            Headers = resp_headers,
            Body = resp_body,
        }
    end
    KEYWARD.http[#KEYWARD.http + 1] = entry
    return resp
end

request = KEYWARD.request
http_request = KEYWARD.request
syn = nil
http = nil

---------------------------------------------------------------------------------------------------
-- Inert Roblox objects
---------------------------------------------------------------------------------------------------

local inert_mt = {}
local function inert(name, fields)
    local o = fields or {}
    rawset(o, "__inert", name or "Inert")
    return setmetatable(o, inert_mt)
end
KEYWARD.inert = inert
inert_mt.__index = function(t, k)
    local v = inert(tostring(rawget(t, "__inert")) .. "." .. tostring(k))
    rawset(t, k, v)
    return v
end
inert_mt.__call = function(t)
    return inert(tostring(rawget(t, "__inert")) .. "()")
end
inert_mt.__tostring = function(t)
    return tostring(rawget(t, "__inert"))
end
inert_mt.__concat = function(a, b)
    return tostring(a) .. tostring(b)
end
for _, op in ipairs({ "__add", "__sub", "__mul", "__div", "__mod", "__pow", "__unm" }) do
    inert_mt[op] = function()
        return inert("Value")
    end
end

local function constructor(name)
    return function(...)
        return inert(name, { n = select("#", ...), ... })
    end
end

Color3 = {
    fromRGB = function(r, g, b)
        return inert("Color3", { R = (r or 0) / 255, G = (g or 0) / 255, B = (b or 0) / 255 })
    end,
    new = function(r, g, b)
        return inert("Color3", { R = r or 0, G = g or 0, B = b or 0 })
    end,
    fromHex = constructor("Color3"),
    fromHSV = constructor("Color3"),
}
Instance = {
    new = function(class, parent)
        return inert(tostring(class), { ClassName = class, Name = class, Parent = parent })
    end,
}
TweenInfo = { new = constructor("TweenInfo") }
UDim2 = { new = constructor("UDim2"), fromScale = constructor("UDim2"), fromOffset = constructor("UDim2") }
UDim = { new = constructor("UDim") }
Vector2 = { new = constructor("Vector2") }
Vector3 = { new = constructor("Vector3") }
Enum = inert("Enum")
workspace = inert("Workspace")
Workspace = workspace

---------------------------------------------------------------------------------------------------
-- Scheduling: nothing sleeps. A spawned function runs at once, up to its first wait, and is then
-- dropped (so a `while true do task.wait() ... end` loop cannot hang a run).
---------------------------------------------------------------------------------------------------

local spawned = setmetatable({}, { __mode = "k" })

local function yield_point(t)
    t = tonumber(t) or 0
    KEYWARD.waited = KEYWARD.waited + t
    local co = coroutine.running()
    if co and spawned[co] then
        coroutine.yield()
    end
    return t, os.time()
end

local function run_now(f, ...)
    if type(f) ~= "function" then
        return nil
    end
    local co = coroutine.create(f)
    spawned[co] = true
    local ok, err = coroutine.resume(co, ...)
    if not ok then
        log("[task] ", "spawned function failed: ", err)
    end
    return co
end

wait = yield_point
delay = function(t, f, ...)
    KEYWARD.waited = KEYWARD.waited + (tonumber(t) or 0)
    return run_now(f, ...)
end
spawn = function(f, ...)
    return run_now(f, ...)
end
task = {
    wait = yield_point,
    spawn = function(f, ...)
        return run_now(f, ...)
    end,
    defer = function(f, ...)
        return run_now(f, ...)
    end,
    delay = delay,
    cancel = function() end,
}
tick = function()
    return os.time()
end
time = tick

---------------------------------------------------------------------------------------------------
-- Executor globals
---------------------------------------------------------------------------------------------------

local HWID = env("KEYWARD_HWID", "keyward-stand-in-hwid")
KEYWARD.hwid = HWID
if env("KEYWARD_NO_GETHWID") == "1" then
    gethwid = nil
else
    gethwid = function()
        return HWID
    end
end
getgenv = function()
    return _G
end
getrenv = getgenv
cloneref = function(x)
    return x
end
clonefunction = function(f)
    return f
end
newcclosure = clonefunction
identifyexecutor = function()
    return "KeywardStandIn", "1.0"
end
getexecutorname = identifyexecutor
setclipboard = function(s)
    KEYWARD.clipboard[#KEYWARD.clipboard + 1] = tostring(s)
end
toclipboard = setclipboard
typeof = type

---------------------------------------------------------------------------------------------------
-- game and its services
---------------------------------------------------------------------------------------------------

local USER_ID = tonumber(env("KEYWARD_USER_ID", "1000001"))
if not USER_ID then
    error("KEYWARD_USER_ID must be a number")
end
if USER_ID == 271635429 then
    error("KEYWARD_USER_ID 271635429 is PandaBetaLib's owner bypass: use another id")
end

local CLIENT_ID = env("KEYWARD_CLIENT_ID", HWID)

local function http_get(_, url)
    local r = KEYWARD.request({ Url = url, Method = "GET" })
    if r.StatusCode == 0 then
        error("HttpGet failed: " .. tostring(r.StatusMessage), 2)
    end
    return r.Body
end

local services = {}

services.HttpService = inert("HttpService", {
    JSONEncode = function(_, v)
        return encode(v, false)
    end,
    JSONDecode = function(_, s)
        return json_decode(s)
    end,
    GenerateGUID = function(_, braces)
        local g = string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function(c)
            local v = c == "x" and math.random(0, 15) or math.random(8, 11)
            return string.format("%X", v)
        end)
        if braces == false then
            return g
        end
        return "{" .. g .. "}"
    end,
    UrlEncode = function(_, s)
        return (tostring(s):gsub("[^%w%-_%.~]", function(c)
            return string.format("%%%02X", c:byte())
        end))
    end,
    RequestAsync = function(_, opts)
        return KEYWARD.request(opts)
    end,
    GetAsync = http_get,
    PostAsync = function(_, url, data, _, _, headers)
        local h = headers or {}
        local r = KEYWARD.request({ Url = url, Method = "POST", Body = data, Headers = h })
        return r.Body
    end,
})

local local_player = inert("LocalPlayer", {
    UserId = USER_ID,
    Name = env("KEYWARD_USER_NAME", "KeywardTester"),
    DisplayName = env("KEYWARD_USER_NAME", "KeywardTester"),
    Kick = function(_, msg)
        KEYWARD.kicks[#KEYWARD.kicks + 1] = tostring(msg)
        error("kicked: " .. tostring(msg), 2)
    end,
})

services.Players = inert("Players", {
    LocalPlayer = local_player,
    GetPlayers = function()
        return { local_player }
    end,
})

services.RbxAnalyticsService = inert("RbxAnalyticsService", {
    GetClientId = function()
        return CLIENT_ID
    end,
})

services.StarterGui = inert("StarterGui", {
    SetCore = function(_, name, args)
        local n = { name = tostring(name) }
        if type(args) == "table" then
            n.Title, n.Text = args.Title, args.Text
        end
        KEYWARD.notifications[#KEYWARD.notifications + 1] = n
    end,
})

services.TweenService = inert("TweenService")

local function get_service(_, name)
    name = tostring(name)
    local s = services[name]
    if not s then
        s = inert(name)
        services[name] = s
    end
    return s
end

game = inert("game", {
    GetService = get_service,
    FindService = get_service,
    HttpGet = http_get,
    HttpGetAsync = http_get,
    IsLoaded = function()
        return true
    end,
    PlaceId = 0,
    GameId = 0,
    JobId = "00000000-0000-0000-0000-000000000000",
})
setmetatable(game, {
    __index = function(t, k)
        return get_service(t, k)
    end,
    __tostring = function()
        return "game"
    end,
})
Game = game

---------------------------------------------------------------------------------------------------
-- Helpers for drivers
---------------------------------------------------------------------------------------------------

local this_dir = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "."
KEYWARD.clients_dir = env("KEYWARD_CLIENTS_DIR", this_dir)

-- Loads a vendored library (a path under the clients directory) unmodified and runs it, the
-- way `loadstring(game:HttpGet(url))()` would; returns what it returns.
function KEYWARD.load_client(rel)
    local path = KEYWARD.clients_dir .. "/" .. rel
    local f = assert(io.open(path, "rb"), "no vendored client at " .. path)
    local src = f:read("*a")
    f:close()
    local chunk, err = loadstring(src, "@" .. rel)
    if not chunk then
        error("cannot compile " .. rel .. ": " .. tostring(err))
    end
    return chunk()
end

-- Runs one step of a driver: calls `f`, then emits
-- {step, ok, result = {...return values...} | error, http = [exchanges made during the step],
--  clipboard = [texts copied during the step], waited = seconds}.
function KEYWARD.step(name, f, ...)
    local first_http, first_clip, waited = #KEYWARD.http, #KEYWARD.clipboard, KEYWARD.waited
    local res = { pcall(f, ...) }
    local line = { step = name, ok = res[1] }
    if res[1] then
        -- Every return value, nil ones as JSON null.
        line.result = {}
        for i = 2, table.maxn(res) do
            line.result[i - 1] = res[i] == nil and cjson.null or res[i]
        end
    else
        line.error = tostring(res[2])
    end
    line.http = {}
    for i = first_http + 1, #KEYWARD.http do
        line.http[#line.http + 1] = KEYWARD.http[i]
    end
    line.clipboard = {}
    for i = first_clip + 1, #KEYWARD.clipboard do
        line.clipboard[#line.clipboard + 1] = KEYWARD.clipboard[i]
    end
    line.waited = KEYWARD.waited - waited
    KEYWARD.emit(line)
    return res[1], line
end

-- The comma-separated step names in KEYWARD_STEPS, or the default list.
function KEYWARD.steps(default)
    local list = {}
    for s in env("KEYWARD_STEPS", default or ""):gmatch("[^,%s]+") do
        list[#list + 1] = s
    end
    return list
end

KEYWARD.env = env

-- The last line of a run.
function KEYWARD.finish()
    KEYWARD.emit({
        step = "done",
        ok = true,
        warnings = KEYWARD.warnings,
        notifications = KEYWARD.notifications,
        kicks = KEYWARD.kicks,
        waited = KEYWARD.waited,
    })
end
