-- Lease slots again: KEYS[i] is a cap key, ARGV[2 + i] the permit holding a slot of it.
-- ARGV: the new lease end (Unix time), key ttl_ms, then the permits.
-- A slot the server lost (a restart) is taken back: its request is still in flight, and
-- counting it again is what lets the caps grant after a restart without over-admitting.
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[1], ARGV[2 + i])
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return #KEYS
