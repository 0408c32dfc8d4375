-- issued_while_inactive: a permanent per-device CAL issued at a time its license server was not
-- activated: never activated, deactivated and not reactivated, or decommissioned. One finding
-- per issue. Per-user and temporary CALs are allowed then.
-- Why it matters: a server that is not activated can no longer license new clients with
-- permanent per-device CALs; one it issued is not backed by an activated license server. A
-- history rule: the breach stays a fact of the audit period after the server is reactivated.
SELECT
    'issued_while_inactive' AS rule,
    'error' AS severity,
    i.server AS subject,
    concat(i.server, ' issued a permanent CAL from ', i.keypack, ' to ', i.holder, ' on ',
           CAST(CAST(i."at" AS DATE) AS VARCHAR), ' while it was ',
           replace(i.server_status, '_', ' ')) AS message,
    1 AS quantity,
    i.seq,
    i."at",
    i.server,
    i.keypack,
    i.holder,
    i.server_status,
    [i.id] AS events
FROM issues i
WHERE NOT i.temporary
  AND i.cal_type = 'per_device'
  AND i.server_status <> 'activated'
ORDER BY i.seq
