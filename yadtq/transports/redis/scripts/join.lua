-- join(chord joins): count chord members whose outcome was just recorded (CanvasBackend in
-- base.py). Runs in the same MULTI/EXEC as record.lua, after it, so it sees the stored state.
-- A member counts once (a set of indexes); the last one fires the callback exactly once.
-- KEYS: schedule, open chords (sorted set: chord id -> created)
-- ARGV: group prefix, done prefix, task prefix, ttl ms, then (chord id, index, task id,
--       state) quadruples; state '' means read it from the task's record (which is then in
--       this slot); on several slot groups the caller passes the state record.lua left.
local group_prefix, done_prefix, task_prefix, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
for i = 5, #ARGV, 4 do
  local chord, index, task, known = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local group = group_prefix .. chord
  local g = redis.call('HMGET', group, 'state', 'size', 'callback', 'created')
  if g[1] == 'open' and g[3] then
    local state = known
    if state == '' then
      state = redis.call('HGET', task_prefix .. task, 'state')
    end
    local done_key = done_prefix .. chord
    if state == 'failed' or state == 'revoked' then
      redis.call('HSET', group, 'state', 'failed', 'failed_member', task)
      redis.call('DEL', done_key)
      redis.call('ZREM', KEYS[2], chord)
    elseif state == 'success' then
      redis.call('SADD', done_key, index)
      redis.call('PEXPIRE', done_key, ttl)
      local done = redis.call('SCARD', done_key)
      if done >= tonumber(g[2]) then
        redis.call('HSET', group, 'state', 'fired', 'done', done)
        redis.call('DEL', done_key)
        redis.call('ZREM', KEYS[2], chord)
        schedule_add(KEYS[1], g[4], g[3])
      else
        redis.call('HSET', group, 'done', done)
      end
    end
  end
end
return 0
