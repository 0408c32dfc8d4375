-- unissued_lost_on_restore: a restore onto another machine or onto a reinstalled OS lost the
-- unissued CALs of the restored packs, and no pack of that agreement, version and CAL type was
-- installed on the server since. One finding per restore, server, agreement, version and type.
-- Why it matters: the lost CALs were bought; the Microsoft Clearinghouse must re-issue them.
WITH lost AS (
    SELECT seq, "at", server, same_machine, os_replaced, agreement, entitlement_version, cal_type,
           SUM(unissued_lost) AS unissued_lost
    FROM restores
    WHERE unissued_lost > 0
    GROUP BY seq, "at", server, same_machine, os_replaced, agreement, entitlement_version, cal_type
)
SELECT
    'unissued_lost_on_restore' AS rule,
    'warning' AS severity,
    l.server AS subject,
    concat(l.server, ' was restored on ', CAST(CAST(l."at" AS DATE) AS VARCHAR),
           CASE WHEN NOT l.same_machine THEN ' onto another machine' ELSE ' onto a reinstalled OS' END,
           ': ', l.unissued_lost, ' unissued ', l.entitlement_version, ' ',
           replace(l.cal_type, '_', '-'), ' CALs of ', l.agreement,
           ' were lost; ask the Clearinghouse to re-issue them') AS message,
    l.unissued_lost AS quantity,
    l.agreement,
    l.entitlement_version AS product_version,
    l.cal_type,
    l."at" AS restored_at
FROM lost l
WHERE NOT EXISTS (
    SELECT 1 FROM keypacks k
    WHERE k.server = l.server
      AND k.agreement = l.agreement
      AND k.entitlement_version = l.entitlement_version
      AND k.cal_type = l.cal_type
      AND k.installed_seq > l.seq)
ORDER BY l.seq, l.agreement, l.entitlement_version, l.cal_type
