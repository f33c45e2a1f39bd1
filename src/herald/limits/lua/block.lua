-- Pause a key until a Unix time, never shortening a longer pause already set.
-- KEYS: [1] the pause. ARGV: until (Unix seconds), ttl_s (how long Redis keeps it).
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
