-- Take one slot on every cap key of a request, or none: run whole by Redis, so that engines
-- on any number of machines, each calling it, together never hold more than a cap.
-- Each cap is a sorted set: member = permit id, score = the Unix time its lease ends.
--
-- KEYS: [1] the marker (hash: run_id, open_at), then the cap keys.
-- ARGV: now, lease_s, permit id, key ttl_ms, then each cap key's limit.
-- Returns {"ok"}, {"full", wait_s, index...} (the 1-based indexes of the full caps among the
-- cap keys), or {"wait", wait_s} while a restarted server is not granting yet.

local now, lease, permit, ttl_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]

local function num(value)
  return string.format('%.17g', value)
end

-- A server the marker does not name (restarted, failed over, or new) lost the permits still
-- in flight: grant nothing for one lease, while their holders renew them back in.
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local marker = redis.call('HMGET', KEYS[1], 'run_id', 'open_at')
if marker[1] ~= run_id then
  redis.call('HSET', KEYS[1], 'run_id', run_id, 'open_at', num(now + lease))
  return {'wait', num(lease)}
end
local open_at = tonumber(marker[2])
if now < open_at then
  return {'wait', num(open_at - now)}
end

local full, wait = {'full', '0'}, 0
for i = 2, #KEYS do
  local limit = tonumber(ARGV[3 + i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', num(now)) -- leases their holders let end
  local count = redis.call('ZCARD', KEYS[i])
  if count >= limit then
    full[#full + 1] = tostring(i - 1)
    -- Free once every lease beyond limit - 1 has ended (if nobody releases first).
    local nth = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')
    wait = math.max(wait, tonumber(nth[2]) - now)
  end
end
if #full > 2 then
  full[2] = num(wait)
  return full
end
local until_ = num(now + lease)
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], until_, permit)
  redis.call('PEXPIRE', KEYS[i], ttl_ms)
end
return {'ok'}
