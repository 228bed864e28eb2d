-- revoke(ids, ts): mark each task revoked (it will never start), and record the state
-- unless the task is processing (its worker finishes it) or already ready.
-- KEYS: events, stats, processing, retrying
-- ARGV: task prefix, waiters prefix, revoked prefix, ttl ms, events maxlen, ts,
--       history entry, ids...
local task_prefix, waiters_prefix, revoked_prefix = ARGV[1], ARGV[2], ARGV[3]
local ttl, maxlen, ts, entry = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local batch = new_batch()
for i = 8, #ARGV do
  local id = ARGV[i]
  redis.call('SET', revoked_prefix .. id, ts, 'PX', ttl)
  local key = task_prefix .. id
  local current = redis.call('HMGET', key, 'state', 'name', 'history')
  local state = current[1]
  if state ~= 'processing' and not READY[state] then
    redis.call('HSET', key, 'state', 'revoked', 'history', (current[3] or '') .. entry)
    redis.call('PEXPIRE', key, ttl)
    index_state(batch, KEYS[3], KEYS[4], id, state, 'revoked', ts)
    log_change(batch, KEYS[1], KEYS[2], maxlen, id, current[2] or '', 'revoked', '', ts)
    notify(waiters_prefix, id, key)
  end
end
apply_batch(batch)
return 0
