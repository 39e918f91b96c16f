-- Argo CD health of a kubehook.io WebhookSubscription, read from the status
-- kubehook writes: status.observedGeneration, status.inactive and the
-- kstatus conditions Ready, Reconciling and Stalled (the last two present
-- only while true).
--
-- Only the Lua base library is used, so the script also runs from argocd-cm
-- without resource.customizations.useOpenLibs.

local function findCondition(conditions, conditionType)
  for _, c in ipairs(conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

-- messageOf returns the condition's message, or fallback when it has none.
local function messageOf(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local hs = {}
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status or {}
local conditions = status.conditions or {}
local ready = findCondition(conditions, "Ready")
local reconciling = findCondition(conditions, "Reconciling")
local stalled = findCondition(conditions, "Stalled")
local suspend = obj.spec ~= nil and obj.spec.suspend == true

-- kubehook reconciles suspended subscriptions too, so a status older than
-- the spec means the last change (suspend included) has not taken effect:
-- whatever the conditions say is about an earlier generation.
local observed = status.observedGeneration or 0
if generation ~= nil and observed ~= generation then
  hs.status = "Progressing"
  if isTrue(reconciling) then
    hs.message = messageOf(reconciling, "reconciling")
  elseif observed == 0 then
    hs.message = "waiting for kubehook to reconcile the subscription"
  else
    hs.message = "waiting for kubehook to reconcile generation " .. generation .. " (status is of generation " .. observed .. ")"
  end
  return hs
end

-- Problems come before suspension: kubehook reports them on Ready even
-- while suspended, and resuming would not fix them.
if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = messageOf(stalled, "stalled")
  return hs
end
if status.inactive == true then
  hs.status = "Degraded"
  hs.message = messageOf(ready, "inactive: deliveries stopped after the endpoint kept failing")
  return hs
end

if suspend then
  hs.status = "Suspended"
  if ready ~= nil and ready.reason == "Suspended" then
    hs.message = messageOf(ready, "suspended")
  else
    hs.message = "suspended: no deliveries until spec.suspend is false"
  end
  return hs
end

if isTrue(reconciling) then
  hs.status = "Progressing"
  hs.message = messageOf(reconciling, "reconciling")
  return hs
end

-- A Ready condition set for an earlier generation says nothing of this one.
if ready == nil or (ready.observedGeneration ~= nil and generation ~= nil and ready.observedGeneration ~= generation) then
  hs.status = "Progressing"
  hs.message = "waiting for kubehook to set the Ready condition"
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = messageOf(ready, "ready")
  return hs
end
if ready.status == "False" then
  hs.status = "Degraded"
  hs.message = messageOf(ready, "not ready")
  return hs
end
hs.status = "Progressing"
hs.message = messageOf(ready, "reconciling")
return hs
