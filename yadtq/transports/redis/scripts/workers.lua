-- workers(): every report and when Redis last heard from each worker, with Redis's clock
-- and the watch, so silences are judged on one clock (records.silence).
-- KEYS: workers (name -> info), seen (name -> last heard), watch
-- Returns: {now, since, last, [name, info, ...], [name, heard, ...]}
local now = clock()
local since, last = read_watch(KEYS[3])
return {string.format('%.6f', now), string.format('%.6f', since), string.format('%.6f', last),
        redis.call('HGETALL', KEYS[1]), redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')}
