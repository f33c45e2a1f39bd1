-- Give back one grant's units: on a rolling window, the log entry of that grant (its time and
-- cost); on a calendar quota, the days it counted against (never below zero).
-- A grant older than the last rebuild is not given back: the rebuild counted only what the
-- store had recorded, which may not hold that grant (its request had not been marked as
-- leaving yet), and taking it out would take out another's. Its units stay spent: never too
-- many requests.
-- KEYS: [1] when the limiter was last rebuilt, then each claim's keys (as in admit.lua).
-- ARGV: granted_at, claim count, then per claim:   "w" cost   |   "d" cost days
local granted_at, claim_count = ARGV[1], tonumber(ARGV[2])
local rebuilt_at = redis.call('GET', KEYS[1])
if rebuilt_at and tonumber(granted_at) < tonumber(rebuilt_at) then
  return 0
end
local k, a = 2, 3
for _ = 1, claim_count do
  local kind, cost = ARGV[a], tonumber(ARGV[a + 1])
  if kind == 'w' then
    local log, sum = KEYS[k], KEYS[k + 1]
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', log, granted_at, granted_at)) do
      if tonumber(string.match(member, '^(%d+):')) == cost then
        redis.call('ZREM', log, member)
        redis.call('DECRBY', sum, cost)
        break
      end
    end
    k, a = k + 2, a + 2
  else
    local days = tonumber(ARGV[a + 2])
    for d = 0, days - 1 do
      local used = redis.call('GET', KEYS[k + d])
      if used then
        redis.call('SET', KEYS[k + d], math.max(0, tonumber(used) - cost), 'KEEPTTL')
      end
    end
    k, a = k + days, a + 3
  end
end
return 0
