-- record(changes, scheduled): records.apply_change for a batch, plus schedule entries.
-- KEYS: schedule, events, stats, processing, retrying, recent successes, recent failures
-- ARGV: task prefix, waiters prefix, ttl ms, events maxlen,
--       changes: one msgpack array of [id, state, ts, worker|'', name|'', history entry,
--                [field, value, ...] (the fields to set besides state and history),
--                queue|'', error type|'', error message|'', '1' if dead-lettered else '',
--                '1' if undelivered (a refused copy: see StateChange.undelivered) else ''],
--       most recent successes/failures kept, '1' to return the states left else '',
--       then (due, member) per schedule entry.
-- Returns, if asked, the state each changed task is left in: {id, state, ...} ('' if none),
-- else 0.
local task_prefix, waiters_prefix = ARGV[1], ARGV[2]
local ttl, maxlen, recent = ARGV[3], ARGV[4], tonumber(ARGV[6])
if #ARGV >= 8 then
  -- One look at the schedule's head for the whole batch (see schedule_add in common.lua).
  local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local earliest = nil
  for i = 8, #ARGV, 2 do
    redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
    local due = tonumber(ARGV[i])
    if earliest == nil or due < earliest then earliest = due end
  end
  if head[2] == nil or earliest < tonumber(head[2]) then
    redis.call('PUBLISH', KEYS[1], '')
  end
end

-- The latest finished tasks, pushed once per list below: [id, name, worker, queue,
-- finished, started|'', error type, error message].
local finished = {success = {}, failed = {}}
local stored = {}
local batch = new_batch()
local changes = cmsgpack.unpack(ARGV[5])
for c = 1, #changes do
  local change = changes[c]
  local id, state, ts, worker, name = change[1], change[2], change[3], change[4], change[5]
  local key = task_prefix .. id
  if change[11] == '1' then
    count(batch, KEYS[3], 'dead_lettered', 1)
  end
  local current = redis.call('HMGET', key, 'state', 'name', 'history', 'started', 'worker', 'queue')
  stored[#stored + 1] = id
  stored[#stored + 1] = current[1] or ''
  -- A ready task (success, failed, revoked) never changes again; a refused copy of a
  -- task that is scheduled, waiting to retry or running does not fail it.
  if not READY[current[1]] and not (change[12] == '1' and STILL_DELIVERABLE[current[1]]) then
    local fields = change[7]
    fields[#fields + 1] = 'state'
    fields[#fields + 1] = state
    fields[#fields + 1] = 'history'
    fields[#fields + 1] = (current[3] or '') .. change[6]
    if state == 'processing' then
      fields[#fields + 1] = 'started'
      fields[#fields + 1] = ts
    end
    redis.call('HSET', key, unpack(fields))
    stored[#stored] = state
    redis.call('PEXPIRE', key, ttl)
    if name == '' then
      name = current[2] or ''
    end
    local list = finished[state]
    if list then
      local queue = change[8]
      if queue == '' then
        queue = current[6] or ''
      end
      local started = ''
      if current[1] == 'processing' then
        started = current[4] or ''
      end
      list[#list + 1] = {id, name, worker ~= '' and worker or (current[5] or ''), queue, ts, started,
                         change[9], change[10]}
    end
    index_state(batch, KEYS[4], KEYS[5], id, current[1], state, ts)
    log_change(batch, KEYS[2], KEYS[3], maxlen, id, name, state, worker, ts)
    if READY[state] then
      notify(waiters_prefix, id, key)
    end
  end
end
apply_batch(batch)
-- Only the last `recent` of a batch can stay in a list: the others are not even packed.
for state, list in pairs({success = KEYS[6], failed = KEYS[7]}) do
  local entries = finished[state]
  if #entries > 0 then
    local packed = {}
    for i = math.max(1, #entries - recent + 1), #entries do
      packed[#packed + 1] = cmsgpack.pack(entries[i])
    end
    redis.call('LPUSH', list, unpack(packed))
    redis.call('LTRIM', list, 0, recent - 1)
  end
end
if ARGV[7] == '1' then
  return stored
end
return 0
