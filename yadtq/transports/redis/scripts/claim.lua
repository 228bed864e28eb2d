-- claim(claims): records.decide_claim for a batch; returns one decision each
-- ('run', 'skip', 'busy' or 'revoked').
-- Liveness (records.instance_alive) is judged on Redis's clock: an instance is alive while
-- heard within `window` seconds of the current watch, and every running one is while no
-- heartbeat from anyone arrived for `gap` seconds (an outage nobody has ended yet).
-- KEYS: instances (instance -> last heard, running workers only), events, stats,
--       processing, retrying, watch
-- ARGV: task prefix, waiters prefix, revoked prefix, ttl ms, events maxlen, window, gap,
--       claims: one msgpack array of [id, name, queue, retries, instance, worker, ts,
--               queued entry|'', processing entry, revoked entry, claim token]
-- The claim token (unique per claim of each call) lets a replay of the same script, e.g.
-- by a client retrying after a lost reply, see its own grant instead of a live claimant.
local task_prefix, waiters_prefix, revoked_prefix = ARGV[1], ARGV[2], ARGV[3]
local ttl, maxlen, window, gap = ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local now = clock()
local since, last = read_watch(KEYS[6])

local function alive(instance)
  local heard = tonumber(redis.call('HGET', KEYS[1], instance))
  if not heard then
    return false
  end
  if now - last > gap then
    return true
  end
  return now - math.max(heard, since) <= window
end

local claims = cmsgpack.unpack(ARGV[8])
local decisions = {}
local batch = new_batch()
for c = 1, #claims do
  local claim = claims[c]
  local id, name, queue, retries = claim[1], claim[2], claim[3], claim[4]
  local instance, worker, ts = claim[5], claim[6], claim[7]
  local key = task_prefix .. id
  local current = redis.call('HMGET', key, 'state', 'retries', 'instance', 'history', 'claim')
  local state = current[1]
  local decision
  if READY[state] or (state and tonumber(current[2] or '0') > tonumber(retries)) then
    decision = 'skip'  -- finished, or superseded by a later attempt
  elseif state == 'processing' and current[5] == claim[11] then
    decision = 'run'  -- this very claim, already granted
  elseif state == 'processing' and current[3] and current[3] ~= '' and current[3] ~= instance
      and alive(current[3]) then
    -- Running on another live worker, even if revoked since: it runs to its outcome.
    decision = 'busy'
  elseif redis.call('EXISTS', revoked_prefix .. id) == 1 then
    redis.call('HSET', key, 'state', 'revoked', 'worker', worker, 'name', name, 'queue', queue,
               'history', (current[4] or '') .. claim[10])
    redis.call('PEXPIRE', key, ttl)
    index_state(batch, KEYS[4], KEYS[5], id, state, 'revoked', ts)
    log_change(batch, KEYS[2], KEYS[3], maxlen, id, name, 'revoked', worker, ts)
    notify(waiters_prefix, id, key)
    decision = 'revoked'
  else
    local history
    if state then
      history = (current[4] or '') .. claim[9]
    else
      history = claim[8] .. claim[9]
    end
    redis.call('HSET', key, 'state', 'processing', 'name', name, 'queue', queue, 'retries', retries,
               'worker', worker, 'instance', instance, 'history', history, 'claim', claim[11],
               'started', ts)
    redis.call('PEXPIRE', key, ttl)
    index_state(batch, KEYS[4], KEYS[5], id, state, 'processing', ts)
    log_change(batch, KEYS[2], KEYS[3], maxlen, id, name, 'processing', worker, ts)
    decision = 'run'
  end
  decisions[#decisions + 1] = decision
end
apply_batch(batch)
return decisions
