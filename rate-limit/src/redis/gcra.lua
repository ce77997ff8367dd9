-- hisn-rate-limit: GCRA over every applicable tier in one call, all-or-nothing.
-- The arithmetic is that of src/gcra.rs, in whole microseconds (exact in Lua
-- doubles below 2^53 us, i.e. until the year 2255).
--
-- KEYS[i]  the key of applicable tier i (all in one hash slot: shared hash tag)
-- ARGV[1]  "" to use the server clock (TIME), or an injected time in us (tests)
-- ARGV[2]  units n
-- ARGV[3]  "1" to only report (peek: nothing is written), "" to decide
-- ARGV[3i+1], ARGV[3i+2], ARGV[3i+3]  interval, tolerance, burst of tier i
-- Returns {denied (0, or the 1-based tier with the longest wait), wait_us,
--          remaining_1, reset_us_1, remaining_2, reset_us_2, ...}
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local n = tonumber(ARGV[2])
local commit = ARGV[3] ~= '1'
local out = {0, 0}
local new = {}
local iv, tol, burst = {}, {}, {}

local function remaining(tat, i)
  local slack = now + tol[i] + iv[i] - tat
  if slack < 0 then slack = 0 end
  local r = math.floor(slack / iv[i])
  if r > burst[i] then r = burst[i] end
  local reset = tat - now
  if reset < 0 then reset = 0 end
  return r, reset
end

for i = 1, #KEYS do
  iv[i] = tonumber(ARGV[3 * i + 1])
  tol[i] = tonumber(ARGV[3 * i + 2])
  burst[i] = tonumber(ARGV[3 * i + 3])
  local tat = now
  local stored = redis.call('GET', KEYS[i])
  if stored then
    tat = tonumber(stored)
    if not tat then return redis.error_reply('hisn-rate-limit: foreign value at a limiter key') end
  end
  local base = tat
  if base < now then base = now end
  local new_tat = base + iv[i] * n
  local allow_at = new_tat - tol[i] - iv[i]
  if allow_at <= now then
    new[i] = new_tat
  elseif allow_at - now > out[2] then
    out[1] = i
    out[2] = allow_at - now
  end
  local r, reset = remaining(tat, i)
  out[2 * i + 1] = r
  out[2 * i + 2] = reset
end

-- Admitted: write every key (unless peeking) and report the state after.
if out[1] == 0 then
  for i = 1, #KEYS do
    -- Every key expires when its state becomes equivalent to an absent key.
    if commit then
      local ttl = math.ceil((new[i] - now) / 1000)
      redis.call('SET', KEYS[i], string.format('%.0f', new[i]), 'PX', ttl)
    end
    local r, reset = remaining(new[i], i)
    out[2 * i + 1] = r
    out[2 * i + 2] = reset
  end
end
return out
