-- issued_beyond_installed: on a license server, the distinct holders of active per-user CALs
-- from its packs of a version exceed the per-user CALs of that version installed there. One
-- finding per server and version.
-- Why it matters: a license server does not enforce per-user CALs, so it lets them pass what is
-- installed. It is a warning: CALs belong to the organisation, and whether the estate is short
-- is over_allocated's question; this says where the installed packs do not match the use.
WITH active AS (
    SELECT server, product_version, COUNT(DISTINCT lower(holder)) AS active
    FROM cals
    WHERE active AND cal_type = 'per_user' AND product_version IS NOT NULL
    GROUP BY server, product_version
),
installed AS (
    SELECT server, product_version, SUM(current_quantity) AS installed,
           array_agg(installed_id ORDER BY installed_seq) AS pack_ids
    FROM keypacks
    WHERE cal_type = 'per_user' AND current_quantity > 0
    GROUP BY server, product_version
)
SELECT
    'issued_beyond_installed' AS rule,
    'warning' AS severity,
    a.server AS subject,
    concat(a.server, ' has ', a.active, ' holders of active ', a.product_version,
           ' per-user CALs but ', COALESCE(i.installed, 0), ' installed (',
           a.active - COALESCE(i.installed, 0), ' beyond)') AS message,
    a.active - COALESCE(i.installed, 0) AS quantity,
    a.server,
    a.product_version,
    a.active,
    COALESCE(i.installed, 0) AS installed,
    array_slice(COALESCE(i.pack_ids, []), 1, 20) AS events
FROM active a
LEFT JOIN installed i ON i.server = a.server AND i.product_version = a.product_version
WHERE a.active > COALESCE(i.installed, 0)
ORDER BY subject, a.product_version
