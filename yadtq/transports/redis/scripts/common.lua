-- Prepended to every yadtq script (redis.py loads common.lua + <operation>.lua).
-- The record layout and key names are documented at the top of transports/redis.py;
-- the Python side passes every key name in, so they are defined in one place.

-- States after which a task never changes again (states.READY_STATES).
local READY = {success = true, failed = true, revoked = true}
-- States in which a refused copy of a task's message does not fail it (records.STILL_DELIVERABLE).
local STILL_DELIVERABLE = {scheduled = true, retrying = true, processing = true}
-- Counters kept in the stats hash, by the state a task entered.
local STAT = {success = 'succeeded', failed = 'failed', retrying = 'retried', revoked = 'revoked'}

-- Inbox channels whose name ends with this take the ready record with the id
-- (RECORD_INBOX_SUFFIX in keys.py), packed [id, HGETALL pairs], unless it is longer
-- than RECORD_INBOX_MAX bytes (RECORD_INBOX_MAX_BYTES); other channels (older clients,
-- asyncio waiters) and longer records get the id alone, and the waiter reads the record.
local RECORD_INBOX = '.r'
local RECORD_INBOX_MAX = 65536

-- Wake every process waiting on task `id` (its record at `key`, ready now): each
-- registered its inbox channel in the task's waiters set (watch.lua). The set is spent
-- once the task is ready.
local function notify(waiters_prefix, id, key)
  local waiters = waiters_prefix .. id
  local inboxes = redis.call('SMEMBERS', waiters)
  local carried = nil
  for i = 1, #inboxes do
    local inbox = inboxes[i]
    if string.sub(inbox, -#RECORD_INBOX) == RECORD_INBOX then
      if carried == nil then
        if redis.call('HSTRLEN', key, 'result') > RECORD_INBOX_MAX then
          carried = id  -- too long whatever the rest: not read and packed for nothing
        else
          carried = cmsgpack.pack({id, redis.call('HGETALL', key)})
          if #carried > RECORD_INBOX_MAX then
            carried = id
          end
        end
      end
      redis.call('PUBLISH', inbox, carried)
    else
      redis.call('PUBLISH', inbox, id)
    end
  end
  if #inboxes > 0 then
    redis.call('DEL', waiters)
  end
end

-- Kept in each index of tasks (processing, retrying) so Redis stores it as a skiplist: a
-- member longer than zset-max-listpack-value (64 bytes by default) rules out the compact
-- listpack, in which every ZADD of an id costs a walk and a copy of the whole set
-- (measured on Redis 7.0: 30 ids added to a set of 40, 311 us as a listpack, 19 us as a
-- skiplist; the processing index holds every task claimed ahead, so it sits in that
-- range). Scored +inf, it is never stale nor among the oldest; readers skip it
-- (INDEX_KEEPER in keys.py).
local INDEX_KEEPER = 'yadtq: this entry keeps the index a skiplist, not a listpack, '
  .. 'whose every insertion copies the whole set (see transports/redis/keys.py)'

-- What one script run changes in the shared indexes and counters, applied once at its
-- end by apply_batch: a batch of tasks then costs one variadic ZADD and ZREM per index
-- and one HINCRBY per counter instead of one call of each per task. An id's last change
-- to an index wins, as if each had been applied in turn; nothing in a script reads an
-- index or a counter after changing it.
local function new_batch()
  return {indexes = {}, counts = {}}
end

-- The table `parent[key]`, made empty on first use.
local function child(parent, key)
  local found = parent[key]
  if not found then
    found = {}
    parent[key] = found
  end
  return found
end

-- Note `id` in the sorted set `key` with `score`, or out of it when `score` is false.
local function index_put(batch, key, id, score)
  child(batch.indexes, key)[id] = score
end

-- Note `n` more in the counter `field` of the hash `key`.
local function count(batch, key, field, n)
  local counts = child(batch.counts, key)
  counts[field] = (counts[field] or 0) + n
end

-- Call `command key args...` in chunks (Lua's unpack is bounded by its C stack).
local function call_chunked(command, key, args, step)
  for first = 1, #args, step do
    redis.call(command, key, unpack(args, first, math.min(#args, first + step - 1)))
  end
end

local function apply_batch(batch)
  for key, index in pairs(batch.indexes) do
    local adds, removes = {}, {}
    for id, score in pairs(index) do
      if score then
        adds[#adds + 1] = score
        adds[#adds + 1] = id
      else
        removes[#removes + 1] = id
      end
    end
    if #adds > 0 then
      adds[#adds + 1] = '+inf'
      adds[#adds + 1] = INDEX_KEEPER
    end
    call_chunked('ZADD', key, adds, 1000)
    call_chunked('ZREM', key, removes, 1000)
  end
  for key, counts in pairs(batch.counts) do
    for field, n in pairs(counts) do
      redis.call('HINCRBY', key, field, n)
    end
  end
end

-- Log one applied state change: its counter in the batch, and an entry in the capped
-- events stream unless `maxlen` is '0' (the backend's `events` option is off).
local function log_change(batch, events, stats, maxlen, id, name, state, worker, ts)
  if maxlen ~= '0' then
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
               'id', id, 'name', name, 'state', state, 'worker', worker, 'ts', ts)
  end
  local stat = STAT[state]
  if stat then
    count(batch, stats, stat, 1)
  end
end

-- Keep the monitor's indexes of a task that moved from `previous` to `state`: the sorted
-- sets of the ids processing and retrying, scored by when they entered that state.
local function index_state(batch, processing, retrying, id, previous, state, ts)
  if state == 'processing' then
    index_put(batch, processing, id, ts)
  elseif previous == 'processing' then
    index_put(batch, processing, id, false)
  end
  if state == 'retrying' then
    index_put(batch, retrying, id, ts)
  elseif previous == 'retrying' then
    index_put(batch, retrying, id, false)
  end
end

-- Redis's clock in seconds: every liveness and lease decision is taken on it, so the
-- clocks of worker hosts are never compared with each other.
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- The watch (records.Watch): {since, last} from the watch hash, 0 when never heard.
local function read_watch(key)
  local w = redis.call('HMGET', key, 'since', 'last')
  return tonumber(w[1]) or 0, tonumber(w[2]) or 0
end

-- Add one entry to the schedule `key` (a sorted set of members scored by due). When it
-- becomes the earliest, publish on the channel named like the key: sleeping schedulers
-- look again (redis/wakeups.py); a later entry changes nothing they planned.
local function schedule_add(key, due, member)
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  redis.call('ZADD', key, due, member)
  if head[2] == nil or tonumber(due) < tonumber(head[2]) then
    redis.call('PUBLISH', key, '')
  end
end
