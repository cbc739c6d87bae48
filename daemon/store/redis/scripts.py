"""Every Lua script of the Redis store, in one place so the atomic steps can be read together.

Conventions: KEYS are always of one agent (one slot) unless the script is about a global key;
numbers that must not be truncated to integers come back as strings; `false` from Lua is a nil
reply (None in Python).

Out of memory: a script's first write command is refused with OOM when Redis is over
`maxmemory`, and a refused first write means nothing was written; every script that writes does
so only after all its checks, so a refusal never leaves half a commit behind.
"""

# Read the stream epoch, creating it (and dropping any orphan stream entries) if it is gone.
_EPOCH = """
local function epoch_of(meta, stream, candidate)
  local epoch = redis.call('HGET', meta, 'e')
  if not epoch then
    epoch = candidate
    redis.call('DEL', stream)
    redis.call('HSET', meta, 'e', epoch, 's', 0)
  end
  return epoch
end
"""

# Entries after a position, all or nothing: false unless the epoch matches and entry after+1 is
# still in the stream.
_READ = """
local function read_after(meta, stream, epoch, after)
  local m = redis.call('HMGET', meta, 'e', 's')
  if not m[1] or m[1] ~= epoch then
    return false
  end
  local last = tonumber(m[2])
  after = tonumber(after)
  if after < 0 or after > last then
    return false
  end
  if after == last then
    return {}
  end
  local start = string.format('%d-0', after + 1)
  local entries = redis.call('XRANGE', stream, start, '+')
  if #entries == 0 or entries[1][1] ~= start then
    return false
  end
  return entries
end
"""

RECENT_COMMITS = 16  # commit ids remembered per agent, to recognise a re-sent commit
AGE_TRIM_BATCH = 100  # stream entries a commit drops for age at most (bounded work per commit)

# Drop stream entries appended (field `t`, ms) before `cutoff`, oldest first, at most
# AGE_TRIM_BATCH per call; an entry without `t` is kept, and so is everything after it.
# Returns a time no later than the first kept entry's append (`now` if it has no `t`), which
# the caller keeps in the meta hash (`o`) so that the next appends look at the stream only once
# that time is past the max age: most commits read one field, not an entry. XDEL, not XTRIM
# MINID, so that Redis 6.0 runs it too.
_AGE = (
    """
local function appended_at(entry)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 't' then
      return tonumber(fields[i + 1])
    end
  end
  return nil
end

local function trim_aged(stream, cutoff, now)
  local batch = redis.call('XRANGE', stream, '-', '+', 'COUNT', """
    + str(AGE_TRIM_BATCH)
    + """)
  local ids = {}
  local kept = 0
  for i = 1, #batch do
    local at = appended_at(batch[i])
    if not at or at >= cutoff then
      kept = at or now
      break
    end
    ids[i] = batch[i][1]
  end
  if #ids > 0 then
    redis.call('XDEL', stream, unpack(ids))
  end
  return kept
end
"""
)

# KEYS: state, meta, stream, commits
# ARGV: expected version, expected epoch ('' for none), head, epoch candidate, stream max,
#       idle ttl s, publish cmd, channel, commit id, stream max age ms, now (ms, the
#       committing node's wall clock), n put, n dropped, then n put (field, entry) pairs,
#       n dropped fields, then the envelopes
# Returns "<epoch>:<version>:<first seq>" (the new revision; first = 0 when there are no
# envelopes), or nil when the stored revision (`v`, and `e`: the stream epoch the state was
# written in) is not the expected one. A commit id already in the agent's recent commits is a
# re-sent commit (redis-py retries EVALSHA when a reply is lost): it writes nothing and answers
# what the first did. The state hash gets the head and only the contact fields the commit put
# or dropped, after every check: the first write is the version's, so an OOM refusal of it
# leaves every contact field as it was. Each entry appended records its append time (`t`, ms,
# the committing node's clock: a script calling TIME costs a sixth more, and a skewed clock
# only trims early, which costs readers a snapshot, or late, which the count cap bounds); an
# append drops entries older than the max age from the front of the stream.
COMMIT = (
    _EPOCH
    + _AGE
    + """
local tag = ARGV[9] .. '|'
local recent = redis.call('LRANGE', KEYS[4], 0, -1)
for i = 1, #recent do
  if string.sub(recent[i], 1, #tag) == tag then
    return string.sub(recent[i], #tag + 1)
  end
end
local stored = redis.call('HMGET', KEYS[1], 'v', 'e')
local version = tonumber(stored[1] or '0')
if version ~= tonumber(ARGV[1]) or (stored[2] or '') ~= ARGV[2] then
  return false
end
redis.call('HSET', KEYS[1], 'v', version + 1, 'h', ARGV[3])
local puts, drops = tonumber(ARGV[12]), tonumber(ARGV[13])
local at = 13
for i = 1, puts do
  redis.call('HSET', KEYS[1], ARGV[at + 1], ARGV[at + 2])
  at = at + 2
end
for i = 1, drops do
  redis.call('HDEL', KEYS[1], ARGV[at + i])
end
at = at + drops
local epoch = epoch_of(KEYS[2], KEYS[3], ARGV[4])
redis.call('HSET', KEYS[1], 'e', epoch)
local n = #ARGV - at
local first = 0
if n > 0 then
  local last = redis.call('HINCRBY', KEYS[2], 's', n)
  first = last - n + 1
  local publication = {epoch, first}
  local now = tonumber(ARGV[11])
  for i = 1, n do
    local data = ARGV[at + i]
    redis.call(
      'XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], (first + i - 1) .. '-0', 'd', data, 't', now
    )
    publication[2 + i] = data
  end
  local cutoff = now - tonumber(ARGV[10])
  if tonumber(redis.call('HGET', KEYS[2], 'o') or '0') < cutoff then
    redis.call('HSET', KEYS[2], 'o', trim_aged(KEYS[3], cutoff, now))
  end
  redis.call(ARGV[7], ARGV[8], cmsgpack.pack(publication))
end
local result = epoch .. ':' .. (version + 1) .. ':' .. first
redis.call('LPUSH', KEYS[4], tag .. result)
redis.call('LTRIM', KEYS[4], 0, """
    + str(RECENT_COMMITS - 1)
    + """)
for i = 1, 4 do
  redis.call('EXPIRE', KEYS[i], ARGV[6])
end
return result
"""
)

# KEYS: meta, stream   ARGV: epoch candidate, idle ttl s
HEAD = (
    _EPOCH
    + """
local epoch = epoch_of(KEYS[1], KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {epoch, tonumber(redis.call('HGET', KEYS[1], 's'))}
"""
)

# KEYS: meta of several agents (a single server only: on a cluster they span slots)
# Returns {epoch or '', last seq} per key, creating nothing: position sync's batched read.
HEADS = """
local heads = {}
for i = 1, #KEYS do
  local m = redis.call('HMGET', KEYS[i], 'e', 's')
  heads[i] = {m[1] or '', m[2] or '0'}
end
return heads
"""

# KEYS: meta, stream   ARGV: epoch, after
READ = (
    _READ
    + """
return read_after(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
"""
)

# KEYS: meta, stream   ARGV: epoch candidate, idle ttl s, resume epoch ('' for none), after
# Returns {epoch, head, entries-or-nil}: what a reconnecting tab needs, in one round trip.
RESUME = (
    _EPOCH
    + _READ
    + """
local epoch = epoch_of(KEYS[1], KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local head = tonumber(redis.call('HGET', KEYS[1], 's'))
local missed = false
if ARGV[3] ~= '' then
  missed = read_after(KEYS[1], KEYS[2], ARGV[3], ARGV[4])
end
return {epoch, head, missed}
"""
)

# KEYS: lease, fence   ARGV: holder, ttl ms, fence ttl s
# Returns the epoch, or nil if someone else holds a live lease. The fence counter outlives any
# lease by far (idle TTL vs lease TTL), so epochs only grow while anyone can still hold a lease.
CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, ':', 1, true)
  if string.sub(current, sep + 1) ~= ARGV[1] then
    return false
  end
  redis.call('SET', KEYS[1], current, 'PX', ARGV[2])
  return tonumber(string.sub(current, 1, sep - 1))
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], epoch .. ':' .. ARGV[1], 'PX', ARGV[2])
return epoch
"""

# KEYS: lease   ARGV: expected value, ttl ms
RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: lease   ARGV: expected value
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: lease, journal   ARGV: expected lease value, step, result, idle ttl s
JOURNAL = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""

# KEYS: rate key   ARGV: emission interval ms, burst
# GCRA on the server's clock, so nodes with skewed clocks share one budget. The same algorithm
# as MemoryStore.rate_acquire. Returns the wait in ms as a string ("0" = granted).
RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
local allow_at = tat - interval * tonumber(ARGV[2])
if now < allow_at then
  return tostring(allow_at - now)
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return '0'
"""

# KEYS: nodes   ARGV: node, ttl ms
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return 1
"""

# KEYS: nodes
LIVE_NODES = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""
