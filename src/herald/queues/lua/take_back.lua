-- Takes back entries a closing queue added that no consumer has read yet, atomically, so that
-- each of them is either handed back to the store by the closing queue or read by a worker,
-- never both.
--   KEYS[1]  a job stream
--   ARGV[1]  the consumer group
--   ARGV[2+] ids of entries the closing queue added, any order
-- Deletes the entries the group has not been delivered yet (ids after its last-delivered id)
-- and returns their ids. Reads XINFO GROUPS (RESP2: flat name/value arrays).
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

if redis.call('EXISTS', KEYS[1]) == 0 then return {} end

local last = nil
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
  if info['name'] == ARGV[1] then last = info['last-delivered-id'] end
end
if not last then return {} end

local last_ms, last_seq = parse(last)
local taken = {}
for i = 2, #ARGV do
  local ms, seq = parse(ARGV[i])
  if ms > last_ms or (ms == last_ms and seq > last_seq) then
    if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then table.insert(taken, ARGV[i]) end
  end
end
return taken
