-- cal_older_than_host: a CAL issued for a session host whose Windows Server version is newer
-- than the CAL's version. One finding per issue (renewals included).
-- Why it matters: a session host needs CALs of its own version or newer; a 2022 host needs 2022
-- or 2025 CALs. The CAL's version is the installed version of its pack: a downgraded pack holds
-- older CALs.
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
    i.session_host_version
FROM issues i
WHERE i.session_host_version IS NOT NULL
  AND i.product_version IS NOT NULL
  AND i.session_host_version > i.product_version
ORDER BY i.seq
