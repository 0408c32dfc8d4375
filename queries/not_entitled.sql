-- not_entitled: a key pack names an agreement under which nothing of its version and CAL type
-- was ever purchased (for a downgrade, of the version it was downgraded from). One finding per
-- pack still holding CALs.
-- Why it matters: an agreement number is accepted at install without any check, so a pack can
-- sit on a server with no purchase behind it at all.
SELECT
    'not_entitled' AS rule,
    'error' AS severity,
    k.keypack AS subject,
    concat('key pack ', k.keypack, ' on ', k.server, ' holds ', k.current_quantity, ' ',
           k.product_version, ' ', replace(k.cal_type, '_', '-'), ' CALs',
           CASE WHEN k.downgraded_from IS NOT NULL
                THEN concat(' (downgraded from ', k.downgraded_from, ')') ELSE '' END,
           ' under ', k.agreement, ', which has no purchase of ', k.entitlement_version, ' ',
           replace(k.cal_type, '_', '-'), ' CALs') AS message,
    k.current_quantity AS quantity,
    k.server,
    k.agreement,
    k.product_version,
    k.entitlement_version,
    k.cal_type
FROM keypacks k
WHERE k.current_quantity > 0
  AND NOT EXISTS (
      SELECT 1 FROM agreements a
      WHERE a.agreement = k.agreement
        AND a.product_version = k.entitlement_version
        AND a.cal_type = k.cal_type)
ORDER BY subject
