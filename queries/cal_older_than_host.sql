-- cal_older_than_host: a CAL issued for a session host whose level is newer than the CAL's
-- level (its pack's version). Levels, not versions: a 2008 TS CAL serves a 2008 R2 host.
-- One finding per issue.
-- Why it matters: a session host needs a CAL of its own version or newer; an older CAL does
-- not license the connection.
SELECT
    'cal_older_than_host' AS rule,
    'error' AS severity,
    COALESCE(i.session_host, i.holder) AS subject,
    concat(i.holder, ' got a ', i.product_version, ' CAL from ', i.keypack, ' on ',
           CAST(CAST(i."at" AS DATE) AS VARCHAR), ' for ',
           COALESCE(i.session_host, 'a session host'), ', which runs Windows Server ',
           i.session_host_version, ' and needs ', i.session_host_version,
           ' CALs or newer') AS message,
    1 AS quantity,
    i.seq,
    i."at",
    i.server,
    i.keypack,
    i.holder,
    i.product_version AS cal_version,
    i.session_host_version,
    [i.id] AS events
FROM issues i
WHERE i.session_host_version IS NOT NULL
  AND i.product_version IS NOT NULL
  -- Levels: 2008 R2 is the 2008 level. Compared here rather than kept as two more columns of
  -- a table with a row per issue.
  AND CASE WHEN i.session_host_version = '2008R2' THEN '2008' ELSE i.session_host_version END
    > CASE WHEN i.product_version = '2008R2' THEN '2008' ELSE i.product_version END
ORDER BY i.seq
