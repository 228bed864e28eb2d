-- claim_due(now, limit, lease): lease up to `limit` due schedule entries.
-- `now` is '' for Redis's clock (what workers pass): due times and leases are never
-- compared with a worker host's clock.
-- Entries whose lease expired (their claimant died before releasing them) go back to the
-- schedule first, scored by their lease deadline (already due), so none is ever lost.
-- KEYS: schedule, leased
-- ARGV: now|'', limit, lease seconds
local now = tonumber(ARGV[1]) or clock()
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES')
for i = 1, #expired, 2 do
  redis.call('ZADD', KEYS[1], expired[i + 1], expired[i])
end
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[2])
local deadline = now + tonumber(ARGV[3])
for i = 1, #due do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('ZADD', KEYS[2], deadline, due[i])
end
return due
