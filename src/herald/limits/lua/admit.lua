-- Admissions: every claim of a reservation is checked and recorded at once, or none is. A
-- call carries one admission or several (the ones a worker makes together, or a rebuild's
-- replays), taken in turn, each whole on its own. Run whole by Redis, so that engines on any
-- number of machines, each calling it, together never exceed a limit. The caller
-- (herald/limits/redis.py) passes the instant and every derived figure (spans, day keys,
-- reopening times): Redis's own clock is never read, so the arithmetic is the memory
-- limiter's, to the bit.
--
-- KEYS: [1] the rebuilt marker, then each admission's keys in turn: its pause keys, then its
-- claims' keys.
-- ARGV: [1] mode ("reserve" | "replay"), then one argument per admission: its figures,
-- space-separated in one string (the client encodes one argument an admission rather than
-- some twenty): now, grant id, pause count, claim count, then per claim:
--   "w" (rolling window; keys: log zset, its total) cost limit span ttl_s
--   "d" (calendar quota; keys: one counter per day) cost limit ttl_s days reopen_1..reopen_n
--   "g" (GCRA pacing; key: theoretical arrival time) cost interval burst
-- Returns one answer per admission, in order: the wait in seconds as a string, or, every one
-- of them, "unready" (reserve only) when the marker does not name the running server: it
-- restarted, or was never rebuilt. A reservation recorded answers "0" followed by what each
-- claim's key then holds, space-separated (units in the window, on the fullest day, or the
-- pacing's burst spent ahead of now): the figures of the herald_quota_used gauge, read here
-- because the script reads those keys anyway. A replay answers "0".

local mode = ARGV[1]
local EPSILON_S = 1e-9 -- float noise in time arithmetic is not a wait

local function num(value)
  return string.format('%.17g', value) -- exact: Redis would otherwise print 14 digits
end

local function cost_of(member)
  return tonumber(string.match(member, '^(%d+):'))
end

if mode == 'reserve' then
  local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  if redis.call('GET', KEYS[1]) ~= run_id then
    local answers = {}
    for n = 2, #ARGV do answers[n - 1] = 'unready' end
    return answers
  end
end

-- One admission's claims, its keys from KEYS[k] on; returns them and the next admission's k.
local function parse(f, k)
  local claims, a = {}, 5
  for i = 1, tonumber(f[4]) do
    local kind, c = f[a], { cost = tonumber(f[a + 1]) }
    c.kind = kind
    if kind == 'w' then
      c.limit, c.span, c.ttl = tonumber(f[a + 2]), tonumber(f[a + 3]), f[a + 4]
      c.log, c.sum = KEYS[k], KEYS[k + 1]
      k, a = k + 2, a + 5
    elseif kind == 'd' then
      c.limit, c.ttl, c.days = tonumber(f[a + 2]), f[a + 3], tonumber(f[a + 4])
      c.keys, c.reopen = {}, {}
      for d = 1, c.days do
        c.keys[d], c.reopen[d] = KEYS[k + d - 1], tonumber(f[a + 4 + d])
      end
      k, a = k + c.days, a + 5 + c.days
    else
      c.interval, c.burst = tonumber(f[a + 2]), tonumber(f[a + 3])
      c.tat = KEYS[k]
      k, a = k + 1, a + 4
    end
    claims[i] = c
  end
  return claims, k
end

-- The sliding log: forget grants that left the window, then wait until enough have.
local function log_wait(c, now)
  local horizon = num(now - c.span)
  local gone = redis.call('ZRANGEBYSCORE', c.log, '-inf', horizon)
  if #gone > 0 then
    local freed = 0
    for _, member in ipairs(gone) do freed = freed + cost_of(member) end
    redis.call('ZREMRANGEBYSCORE', c.log, '-inf', horizon)
    redis.call('DECRBY', c.sum, freed)
  end
  local held = tonumber(redis.call('GET', c.sum) or '0')
  c.used = held + c.cost
  local excess = held + c.cost - c.limit
  if excess <= 0 then return 0 end
  local freed, offset = 0, 0
  while true do
    local page = redis.call('ZRANGE', c.log, offset, offset + 99, 'WITHSCORES')
    if #page == 0 then return math.huge end
    for j = 1, #page, 2 do
      freed = freed + cost_of(page[j])
      if freed >= excess then return tonumber(page[j + 1]) + c.span - now end
    end
    offset = offset + 100
  end
end

local function day_wait(c, now)
  local wait, full = 0, false
  c.used = 0
  for d = 1, c.days do
    local held = tonumber(redis.call('GET', c.keys[d]) or '0')
    c.used = math.max(c.used, held + c.cost)
    if held + c.cost > c.limit then
      full = true
      wait = math.max(wait, c.reopen[d] - now)
    end
  end
  if not full then return 0 end
  return math.max(wait, 1e-3)
end

local function gcra_wait(c, now)
  local tat = tonumber(redis.call('GET', c.tat) or '0')
  c.used = (math.max(tat, now) + c.cost * c.interval - now) / c.interval
  local allowed_at = math.max(tat, now) + c.cost * c.interval - c.burst * c.interval
  return math.max(0, allowed_at - now)
end

local function record(c, i, now, now_text, grant)
  if c.kind == 'w' then
    redis.call('ZADD', c.log, now_text, c.cost .. ':' .. grant .. ':' .. i)
    redis.call('INCRBY', c.sum, c.cost)
    redis.call('EXPIRE', c.log, c.ttl)
    redis.call('EXPIRE', c.sum, c.ttl)
  elseif c.kind == 'd' then
    for d = 1, c.days do
      redis.call('INCRBY', c.keys[d], c.cost)
      redis.call('EXPIRE', c.keys[d], c.ttl)
    end
  else
    local tat = tonumber(redis.call('GET', c.tat) or '0')
    local next_tat = math.max(tat, now) + c.cost * c.interval
    -- Once its time has passed the state is as good as empty: keep it that long.
    redis.call('SET', c.tat, num(next_tat), 'EX', math.max(1, math.ceil(next_tat - now) + 1))
  end
end

-- One admission from its figures and its keys from KEYS[k] on: its answer, and the next k.
local function admit(figures, k)
  local f = {}
  for figure in string.gmatch(figures, '%S+') do f[#f + 1] = figure end
  local now_text, grant, pause_count = f[1], f[2], tonumber(f[3])
  local now = tonumber(now_text)
  local claims, next_k = parse(f, k + pause_count)
  if mode == 'reserve' then
    local wait = 0
    for p = k, k + pause_count - 1 do
      local blocked = redis.call('GET', KEYS[p])
      if blocked then wait = math.max(wait, tonumber(blocked) - now) end
    end
    for _, c in ipairs(claims) do
      local w
      if c.kind == 'w' then
        w = log_wait(c, now)
      elseif c.kind == 'd' then
        w = day_wait(c, now)
      else
        w = gcra_wait(c, now)
      end
      wait = math.max(wait, w)
    end
    if wait > EPSILON_S then return num(wait), next_k end
  end
  for i, c in ipairs(claims) do record(c, i, now, now_text, grant) end
  if mode ~= 'reserve' then return '0', next_k end
  local answer = { '0' }
  for i, c in ipairs(claims) do answer[i + 1] = num(c.used) end
  return table.concat(answer, ' '), next_k
end

local answers, k = {}, 2
for n = 2, #ARGV do
  answers[n - 1], k = admit(ARGV[n], k)
end
return answers
