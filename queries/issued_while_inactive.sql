-- issued_while_inactive: a permanent CAL issued by a license server that was not activated at
-- that moment: never activated, or deactivated and not reactivated. One finding per issue.
-- Why it matters: a server that is not activated can no longer license new clients; a CAL it
-- issued is not backed by an activated license server. A history rule: the breach stays a fact
-- of the audit period after the server is reactivated.
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
    i.keypack,
    i.holder,
    i.server_status
FROM issues i
WHERE NOT i.temporary
  AND i.server_status <> 'activated'
ORDER BY i.seq
