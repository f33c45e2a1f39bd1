-- Free slots: KEYS[i] is a cap key, ARGV[i] the permit holding a slot of it.
for i = 1, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[i])
end
return #KEYS
