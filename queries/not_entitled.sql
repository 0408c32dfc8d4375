-- not_entitled: a key pack whose agreement has no purchase whose rights reach the pack's
-- requirement (its downgraded_from, else its version): none of that CAL type, or only older
-- ones without Software Assurance that reaches it. One finding per pack.
-- Why it matters: the Clearinghouse does not check an agreement number against purchases, so
-- installed is not entitled; the pack was installed under an agreement that never bought it.
SELECT
    'not_entitled' AS rule,
    'error' AS severity,
    k.keypack AS subject,
    concat('key pack ', k.keypack, ' on ', k.server, ' holds ', k.current_quantity, ' ',
           k.product_version, ' ', replace(k.cal_type, '_', '-'), ' CALs',
           CASE WHEN k.downgraded_from IS NOT NULL
                THEN concat(' (downgraded from ', k.downgraded_from, ')') ELSE '' END,
           ' under ', k.agreement, ', which has no purchase of ',
           replace(k.cal_type, '_', '-'), ' CALs whose rights reach ', k.requirement) AS message,
    k.current_quantity AS quantity,
    k.server,
    k.keypack,
    k.agreement,
    k.product_version,
    k.requirement,
    k.cal_type,
    [k.installed_id] AS events
FROM keypacks k
WHERE k.current_quantity > 0
  AND NOT EXISTS (
      SELECT 1 FROM purchases p
      WHERE p.agreement = k.agreement
        AND p.cal_type = k.cal_type
        AND p.ceiling >= k.requirement)
ORDER BY subject
