-- release_dedupe(key, task_id): drop the dedupe key if it still holds `task_id` (a task
-- whose sending failed must not stand for identical ones).
-- KEYS: dedupe key
-- ARGV: task id
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
