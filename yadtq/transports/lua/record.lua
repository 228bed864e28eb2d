-- record(changes, scheduled): records.apply_change for a batch, plus schedule entries.
-- KEYS: schedule, events, stats
-- ARGV: task prefix, waiters prefix, ttl ms, events maxlen,
--       changes: one msgpack array of [id, state, ts, worker|'', name|'', history entry,
--                [field, value, ...]] (the fields to set besides state and history),
--       then (due, member) per schedule entry.
local task_prefix, waiters_prefix = ARGV[1], ARGV[2]
local ttl, maxlen = ARGV[3], ARGV[4]
for i = 6, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
end

local changes = cmsgpack.unpack(ARGV[5])
for c = 1, #changes do
  local change = changes[c]
  local id, state, ts, worker, name = change[1], change[2], change[3], change[4], change[5]
  local key = task_prefix .. id
  local current = redis.call('HMGET', key, 'state', 'name', 'history')
  -- A ready task (success, failed, revoked) never changes again.
  if not READY[current[1]] then
    local fields = change[7]
    fields[#fields + 1] = 'state'
    fields[#fields + 1] = state
    fields[#fields + 1] = 'history'
    fields[#fields + 1] = (current[3] or '') .. change[6]
    redis.call('HSET', key, unpack(fields))
    redis.call('PEXPIRE', key, ttl)
    if name == '' then
      name = current[2] or ''
    end
    log_change(KEYS[2], KEYS[3], maxlen, id, name, state, worker, ts)
    if READY[state] then
      notify(waiters_prefix, id)
    end
  end
end
return 0
