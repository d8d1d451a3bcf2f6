-- wrk script for bench/join.py: POST an empty JSON object to the URL's path
-- and count 2xx responses against everything else, per thread.
--
-- done() prints one machine-readable line that join.py parses:
--   TRIBUNE_STATUS ok=<2xx count> other=<non-2xx count> codes=<code>:<n>,...

wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    ok = 0
    other = 0
    codes = {}
end

function response(status, headers, body)
    if status >= 200 and status < 300 then
        ok = ok + 1
    else
        other = other + 1
        codes[status] = (codes[status] or 0) + 1
    end
end

function done(summary, latency, requests)
    local total_ok, total_other, merged = 0, 0, {}
    for _, thread in ipairs(threads) do
        total_ok = total_ok + thread:get("ok")
        total_other = total_other + thread:get("other")
        for code, n in pairs(thread:get("codes")) do
            merged[code] = (merged[code] or 0) + n
        end
    end
    local parts = {}
    for code, n in pairs(merged) do
        table.insert(parts, string.format("%d:%d", code, n))
    end
    io.write(string.format("TRIBUNE_STATUS ok=%d other=%d codes=%s\n",
        total_ok, total_other, table.concat(parts, ",")))
end
