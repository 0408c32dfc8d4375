-- over_entitlement: for an agreement, version and CAL type of which something was purchased,
-- more CALs are installed across all license servers than were bought.
-- Why it matters: the Clearinghouse never checks an agreement number against purchases, so
-- installed is not entitled. A downgraded pack counts against the version it was bought as
-- (entitlement_version), and migrated CALs still on the source count twice: both servers can
-- issue them.
WITH installed AS (
    SELECT agreement, entitlement_version, cal_type,
           SUM(current_quantity) AS installed,
           COUNT(*) AS n_keypacks
    FROM keypacks
    WHERE current_quantity > 0
    GROUP BY agreement, entitlement_version, cal_type
)
SELECT
    'over_entitlement' AS rule,
    'error' AS severity,
    concat(a.agreement, '/', a.product_version, '/', a.cal_type) AS subject,
    concat(a.agreement, ': ', i.installed, ' ', a.product_version, ' ',
           replace(a.cal_type, '_', '-'), ' CALs are installed in ', i.n_keypacks,
           CASE WHEN i.n_keypacks = 1 THEN ' key pack' ELSE ' key packs' END,
           ' but ', a.purchased, ' were purchased (', i.installed - a.purchased, ' over)') AS message,
    i.installed - a.purchased AS quantity,
    a.purchased,
    i.installed,
    a.agreement,
    a.product_version,
    a.cal_type
FROM agreements a
JOIN installed i
  ON i.agreement = a.agreement
 AND i.entitlement_version = a.product_version
 AND i.cal_type = a.cal_type
WHERE i.installed > a.purchased
ORDER BY subject
