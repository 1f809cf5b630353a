-- registry.lua: wrk request generator for the registry benchmarks.
-- Reads "id token sibling" lines from BENCH_IDS and cycles through them, one workspace per request.
-- BENCH_MODE selects the request: heartbeat | register | discover | hello.
local ids, toks, sibs = {}, {}, {}
local mode = os.getenv("BENCH_MODE") or "heartbeat"
local n = 0

local f = assert(io.open(os.getenv("BENCH_IDS"), "r"))
for line in f:lines() do
	local id, tok, sib = line:match("^(%S+)%s+(%S+)%s*(%S*)$")
	if id then
		ids[#ids + 1] = id
		toks[#toks + 1] = tok
		sibs[#sibs + 1] = sib ~= "" and sib or id
	end
end
f:close()

function setup(thread)
	thread:set("offset", math.random(1, #ids))
end

function request()
	n = n + 1
	local k = ((n + (offset or 0)) % #ids) + 1
	local hdr = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. toks[k] }
	if mode == "register" then
		local body = '{"id":"' .. ids[k] .. '","url":"http://10.20.' .. (k % 250) .. '.1:8000",'
			.. '"agent_card":{"name":"bench","skills":[]}}'
		return wrk.format("POST", "/registry/register", hdr, body)
	elseif mode == "discover" then
		local target = sibs[k]
		hdr["X-Workspace-ID"] = ids[k]
		return wrk.format("GET", "/registry/discover/" .. target, hdr)
	end
	local body = '{"workspace_id":"' .. ids[k] .. '","error_rate":0,"active_tasks":0,'
		.. '"uptime_seconds":' .. n .. ',"current_task":""}'
	return wrk.format("POST", "/registry/heartbeat", hdr, body)
end
