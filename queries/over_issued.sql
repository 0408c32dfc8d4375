-- over_issued: on a license server, more per-user CALs of a version are active than per-user
-- CALs of that version are installed there. Active means issued, not revoked, not past
-- expires_at at the as-of time, and still in the server's database.
-- Why it matters: a license server does not refuse per-user CALs beyond what it holds, and
-- over-allocation is a breach of the licence terms.
WITH active AS (
    SELECT server, product_version, COUNT(*) AS active_issued
    FROM cals
    WHERE active AND cal_type = 'per_user'
    GROUP BY server, product_version
),
installed AS (
    SELECT server, product_version, SUM(current_quantity) AS installed
    FROM keypacks
    WHERE cal_type = 'per_user'
    GROUP BY server, product_version
)
SELECT
    'over_issued' AS rule,
    'error' AS severity,
    a.server AS subject,
    concat(a.server, ' has ', a.active_issued, ' active ', a.product_version,
           ' per-user CALs but ', COALESCE(i.installed, 0), ' installed (',
           a.active_issued - COALESCE(i.installed, 0), ' over)') AS message,
    a.active_issued - COALESCE(i.installed, 0) AS quantity,
    a.active_issued,
    COALESCE(i.installed, 0) AS installed,
    a.product_version
FROM active a
LEFT JOIN installed i ON i.server = a.server AND i.product_version = a.product_version
WHERE a.active_issued > COALESCE(i.installed, 0)
ORDER BY subject, a.product_version
