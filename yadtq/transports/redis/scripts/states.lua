-- states(ids): the state field of each task, '' where none is stored. One call for the
-- many ids a worker checks for revocations a few times a second.
-- ARGV: task prefix, ids...
local prefix = ARGV[1]
local found = {}
for i = 2, #ARGV do
  found[i - 1] = redis.call('HGET', prefix .. ARGV[i], 'state') or ''
end
return found
