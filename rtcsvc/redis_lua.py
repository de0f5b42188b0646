"""The Lua scripts that make rooms in Redis atomic, for :mod:`rtcsvc.redis_hub`.

Every change of a seat (join, resume, drop, leave, expiry, a dead process's sweep) and every
routing decision for a signal runs as one script, so Redis serialises them: two processes can
never both take a room's last seat, and a signal is either published to the process holding a
live recipient or queued for a dropped one, never both and never neither. Each script also
publishes the events that follow from its change to the channels of the processes concerned, in
the same atomic step, so each process sees one ordered stream. Keys and messages are described in
docs/scaling.md. The scripts touch keys they compute themselves, which rules out Redis Cluster.

Every script gets the same first six arguments (see ``RedisHub._common``):
ARGV[1] key prefix, ARGV[2]/ARGV[3] the encoded ``peer-left`` message around the peer id,
ARGV[4] the queue bounds per dropped peer as ``<signals>:<bytes>``, ARGV[5] the resume grace in
ms, ARGV[6] this process. What they publish is written by the ``msg_<tag>`` encoders that
:mod:`rtcsvc.redis_channel` generates from its one definition of the channel messages.
"""

from __future__ import annotations

from rtcsvc.redis_channel import lua_encoders

PRELUDE = lua_encoders() + r"""
local P, LEFT_PRE, LEFT_POST = ARGV[1], ARGV[2], ARGV[3]
local LIMIT, LIMIT_BYTES = string.match(ARGV[4], '^(%d+):(%d+)$')
LIMIT, LIMIT_BYTES = tonumber(LIMIT), tonumber(LIMIT_BYTES)
local GRACE, ME = tonumber(ARGV[5]), ARGV[6]
local function chan(proc) return P .. 'proc:' .. proc end

-- The processes holding seats in a room (proc -> list of its live seats) and the dropped seats.
local function room_procs(room)
  local procs, dropped = {}, {}
  for _, id in ipairs(redis.call('ZRANGE', P .. 'room:' .. room, 0, -1)) do
    local f = redis.call('HMGET', P .. 'peer:' .. id, 'proc', 'state')
    if f[1] then
      local live = procs[f[1]]
      if not live then live = {}; procs[f[1]] = live end
      if f[2] == 'live' then live[#live + 1] = id else dropped[#dropped + 1] = id end
    end
  end
  return procs, dropped
end

-- A dropped peer's queue is bounded in signals and in bytes (kept in queue-bytes:<id>).
local overflow = {}
local function count_bytes(id, added)
  local b = P .. 'queue-bytes:' .. id
  local total = redis.call('INCRBY', b, added)
  redis.call('PEXPIRE', b, GRACE)
  return total
end

local function enqueue(id, payload)
  local q = P .. 'queue:' .. id
  local n = redis.call('RPUSH', q, payload)
  redis.call('PEXPIRE', q, GRACE)
  if count_bytes(id, #payload) > LIMIT_BYTES or n > LIMIT then overflow[#overflow + 1] = id end
end

local function remove_seat(id)
  local k = P .. 'peer:' .. id
  local f = redis.call('HMGET', k, 'room', 'proc', 'token')
  if not f[1] then return end
  redis.call('DEL', k, P .. 'queue:' .. id, P .. 'queue-bytes:' .. id, P .. 'token:' .. f[3])
  redis.call('ZREM', P .. 'room:' .. f[1], id)
  redis.call('SREM', P .. 'seats:' .. f[2], id)
  local procs, dropped = room_procs(f[1])
  local payload = LEFT_PRE .. id .. LEFT_POST
  for _, d in ipairs(dropped) do enqueue(d, payload) end
  -- The holder hears of it too: a seat can be removed by someone else (sweep, overflow).
  if not procs[f[2]] then procs[f[2]] = {} end
  for proc, live in pairs(procs) do
    redis.call('PUBLISH', chan(proc), msg_L(f[1], id, table.concat(live, LIST_SEP)))
  end
end

-- A dropped peer whose queue ran over its bound counts as gone, as in the in-memory hub.
local function settle()
  while #overflow > 0 do remove_seat(table.remove(overflow)) end
end

local function snapshot(room)
  local z = redis.call('ZRANGE', P .. 'room:' .. room, 0, -1, 'WITHSCORES')
  local parts = {}
  for i = 1, #z, 2 do parts[#parts + 1] = z[i] .. PAIR_SEP .. z[i + 1] end
  return table.concat(parts, LIST_SEP)
end
"""

#: ARGV[7..]: room, new peer id, new token, capacity, encoded peer-joined, request id, resume
#: token ('' for none), '1' to resume only ('0' to join otherwise). Publishes 'W' (the welcome
#: marker) to this process after the room's events, so everything published to us later comes
#: after the seat exists. Resume only: a token that is not live in this room is answered
#: 'stale' and changes nothing (no seat, no event), so it can never turn into a fresh join.
JOIN = PRELUDE + r"""
local room, id, token, max, joined, req, rtoken, only =
  ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10]), ARGV[11], ARGV[12], ARGV[13], ARGV[14] == '1'
if rtoken ~= '' then
  local old = redis.call('GET', P .. 'token:' .. rtoken)
  if old then
    local k = P .. 'peer:' .. old
    local f = redis.call('HMGET', k, 'room', 'proc')
    if f[1] == room then
      redis.call('DEL', P .. 'token:' .. rtoken)
      redis.call('SET', P .. 'token:' .. token, old)
      redis.call('HSET', k, 'proc', ME, 'state', 'live', 'token', token)
      redis.call('HINCRBY', k, 'epoch', 1)
      redis.call('SREM', P .. 'seats:' .. f[2], old)
      redis.call('SADD', P .. 'seats:' .. ME, old)
      local q = P .. 'queue:' .. old
      local backlog = redis.call('LRANGE', q, 0, -1)
      redis.call('DEL', q, P .. 'queue-bytes:' .. old)
      if f[2] ~= ME then redis.call('PUBLISH', chan(f[2]), msg_M(old)) end
      redis.call('PUBLISH', chan(ME), msg_W(req, old, '1', snapshot(room)))
      return {'resumed', old, backlog}
    end
  end
end
if only then return {'stale'} end
if redis.call('ZCARD', P .. 'room:' .. room) >= max then return {'full'} end
local seq = redis.call('INCR', P .. 'seq')
local procs, dropped = room_procs(room)
for _, d in ipairs(dropped) do enqueue(d, joined) end
for proc, live in pairs(procs) do
  redis.call('PUBLISH', chan(proc), msg_J(room, id, seq, table.concat(live, LIST_SEP)))
end
redis.call('ZADD', P .. 'room:' .. room, seq, id)
redis.call('HSET', P .. 'peer:' .. id, 'room', room, 'proc', ME, 'state', 'live',
           'token', token, 'epoch', 0)
redis.call('SET', P .. 'token:' .. token, id)
redis.call('SADD', P .. 'seats:' .. ME, id)
redis.call('PUBLISH', chan(ME), msg_W(req, id, '0', snapshot(room)))
settle()
return {'joined', id}
"""

#: ARGV[7]: encoded payload; ARGV[8..]: recipient ids. One PUBLISH per holding process.
ROUTE = PRELUDE + r"""
local payload = ARGV[7]
local by_proc = {}
for i = 8, #ARGV do
  local id = ARGV[i]
  local f = redis.call('HMGET', P .. 'peer:' .. id, 'proc', 'state')
  if f[1] then
    if f[2] == 'live' then
      local ids = by_proc[f[1]]
      if not ids then ids = {}; by_proc[f[1]] = ids end
      ids[#ids + 1] = id
    else
      enqueue(id, payload)
    end
  end
end
for proc, ids in pairs(by_proc) do
  redis.call('PUBLISH', chan(proc), msg_S(table.concat(ids, LIST_SEP), payload))
end
settle()
return #ARGV - 7
"""

#: ARGV[7]: peer id. Marks the seat dropped and publishes 'D' to ourselves: whatever reaches us
#: for this peer before that marker was routed while it was live (see STRAGGLERS).
DROP = PRELUDE + r"""
local k = P .. 'peer:' .. ARGV[7]
local f = redis.call('HMGET', k, 'proc', 'state')
if f[1] ~= ME or f[2] ~= 'live' then return 0 end
redis.call('HSET', k, 'state', 'dropped')
local epoch = redis.call('HINCRBY', k, 'epoch', 1)
redis.call('PUBLISH', chan(ME), msg_D(ARGV[7], epoch))
return epoch
"""

#: ARGV[7]: peer id, ARGV[8]: drop epoch, ARGV[9..]: payloads routed before the drop, in order.
#: They go in front of what was queued after the drop, unless the peer has moved on.
STRAGGLERS = PRELUDE + r"""
local id = ARGV[7]
local f = redis.call('HMGET', P .. 'peer:' .. id, 'proc', 'state', 'epoch')
if f[1] ~= ME or f[2] ~= 'dropped' or f[3] ~= ARGV[8] then return 0 end
local q = P .. 'queue:' .. id
local added = 0
for i = #ARGV, 9, -1 do
  redis.call('LPUSH', q, ARGV[i])
  added = added + #ARGV[i]
end
redis.call('PEXPIRE', q, GRACE)
if count_bytes(id, added) > LIMIT_BYTES or redis.call('LLEN', q) > LIMIT then
  overflow[1] = id
end
settle()
return 1
"""

#: ARGV[7]: peer id. A clean leave (or a join given back), only by the holding process.
LEAVE = PRELUDE + r"""
if redis.call('HGET', P .. 'peer:' .. ARGV[7], 'proc') ~= ME then return 0 end
remove_seat(ARGV[7])
settle()
return 1
"""

#: ARGV[7]: peer id. The grace period ran out: free the seat if it is still ours and dropped.
EXPIRE = PRELUDE + r"""
local f = redis.call('HMGET', P .. 'peer:' .. ARGV[7], 'proc', 'state')
if f[1] ~= ME or f[2] ~= 'dropped' then return 0 end
remove_seat(ARGV[7])
settle()
return 1
"""

#: ARGV[7]: lease in ms. Renews our lease, then removes the seats of every process whose lease
#: has expired (peer-left to their rooms). Atomic, so every process may sweep: no lock needed.
#: Returns 0 when our own lease had already gone (Redis restarted): the caller re-registers.
HEARTBEAT = PRELUDE + r"""
local had = redis.call('EXISTS', P .. 'lease:' .. ME)
redis.call('SET', P .. 'lease:' .. ME, '1', 'PX', ARGV[7])
redis.call('SADD', P .. 'procs', ME)
for _, proc in ipairs(redis.call('SMEMBERS', P .. 'procs')) do
  if redis.call('EXISTS', P .. 'lease:' .. proc) == 0 then
    for _, id in ipairs(redis.call('SMEMBERS', P .. 'seats:' .. proc)) do remove_seat(id) end
    redis.call('DEL', P .. 'seats:' .. proc)
    redis.call('SREM', P .. 'procs', proc)
  end
end
settle()
return had
"""

#: ARGV[7]: lease in ms, ARGV[8]: '1' if Redis lost its data (restarted), ARGV[9..]: our seats
#: as (id, room, seq, token, state) quintuples. After a restart the seats are written back with
#: their old join order; otherwise seats of ours that Redis no longer knows were removed on
#: purpose and are reported back (as are seats another process has taken over by resume), and
#: seats Redis holds for us that we no longer have (left while Redis was unreachable) are removed.
REGISTER = PRELUDE + r"""
redis.call('SET', P .. 'lease:' .. ME, '1', 'PX', ARGV[7])
redis.call('SADD', P .. 'procs', ME)
local restarted = ARGV[8] == '1'
local keep, lost = {}, {}
for i = 9, #ARGV, 5 do
  local id, room, seq, token, state = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local k = P .. 'peer:' .. id
  local holder = redis.call('HGET', k, 'proc')
  if not holder and restarted then
    redis.call('HSET', k, 'room', room, 'proc', ME, 'state', state, 'token', token, 'epoch', 0)
    redis.call('SET', P .. 'token:' .. token, id)
    redis.call('ZADD', P .. 'room:' .. room, seq, id)
    redis.call('SADD', P .. 'seats:' .. ME, id)
    if tonumber(redis.call('GET', P .. 'seq') or '0') < tonumber(seq) then
      redis.call('SET', P .. 'seq', seq)
    end
    keep[id] = true
  elseif holder == ME then
    keep[id] = true
  else
    lost[#lost + 1] = id
  end
end
for _, id in ipairs(redis.call('SMEMBERS', P .. 'seats:' .. ME)) do
  if not keep[id] then remove_seat(id) end
end
settle()
return lost
"""

SCRIPTS = {
    "join": JOIN,
    "route": ROUTE,
    "drop": DROP,
    "stragglers": STRAGGLERS,
    "leave": LEAVE,
    "expire": EXPIRE,
    "heartbeat": HEARTBEAT,
    "register": REGISTER,
}
