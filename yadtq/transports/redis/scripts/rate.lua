-- rate(requests): flow.admit for each request, on Redis's clock, in one step.
-- Per task name a sorted set `rate:<name>`: attempt -> start time or reservation, kept
-- one period. A refused attempt's schedule entry is added here too, due just after its
-- reservation (the member is built around the due: see codec.schedule_member_parts).
-- KEYS: schedule
-- ARGV: rate key prefix, then per request: name, attempt, count, period seconds,
--       member head, member tail, slack (the entry is due that long after the slot)
-- Returns per request '' (start now) or the reservation as a string.
local now = clock()
local answers = {}
for i = 2, #ARGV, 7 do
  local key = ARGV[1] .. ARGV[i]
  local attempt, count, period = ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
  local at = tonumber(redis.call('ZSCORE', key, attempt))
  if not at then
    at = now
    local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    if #last > 0 then
      at = math.max(at, tonumber(last[2]))
    end
    local held = redis.call('ZCARD', key)
    if held >= count then
      local nth = redis.call('ZRANGE', key, held - count, held - count, 'WITHSCORES')
      at = math.max(at, tonumber(nth[2]) + period)
    end
    redis.call('ZADD', key, at, attempt)
  end
  -- the set lives as long as its newest entry's window
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', key, math.ceil((tonumber(newest[2]) + period) * 1000))
  if at <= now then
    answers[#answers + 1] = ''
  else
    answers[#answers + 1] = string.format('%.6f', at)
    local due = at + tonumber(ARGV[i + 6])
    schedule_add(KEYS[1], due, ARGV[i + 4] .. struct.pack('>d', due) .. ARGV[i + 5])
  end
end
return answers
