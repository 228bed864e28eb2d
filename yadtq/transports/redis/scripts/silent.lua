-- silent(after): the reports of running workers not heard from for more than `after`
-- seconds (records.silence on Redis's clock), read through the running workers' index:
-- a heartbeat looks for dead workers with it, and never reads the reports of the
-- stopped ones the registry keeps for `worker_retention`.
-- A worker is that silent when it was last heard before now - after, and the watch
-- began before then too (right after an outage nobody is: records.silence).
-- KEYS: workers (name -> info), running (name of a running worker -> last heard), watch
-- ARGV: after
-- Returns: {now, since, last, [name, info, ...], [name, heard, ...]}, as workers.lua.
local now = clock()
local since, last = read_watch(KEYS[3])
local cutoff = now - tonumber(ARGV[1])
local reports, heard = {}, {}
if since < cutoff then
  local names = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff, 'WITHSCORES')
  for i = 1, #names, 2 do
    local info = redis.call('HGET', KEYS[1], names[i])
    if info then
      reports[#reports + 1] = names[i]
      reports[#reports + 1] = info
      heard[#heard + 1] = names[i]
      heard[#heard + 1] = names[i + 1]
    end
  end
end
return {string.format('%.6f', now), string.format('%.6f', since), string.format('%.6f', last),
        reports, heard}
