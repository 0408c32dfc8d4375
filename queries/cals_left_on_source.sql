-- cals_left_on_source: a migration whose CALs were not removed from the source license server:
-- the wizard did not remove them (source_removed false) and no source.cals_removed of that pack
-- covered them. Error while the source is still activated, warning once it is deactivated.
-- Why it matters: using the source with CALs that were migrated is a licence violation, and a
-- source restored, powered back on or reactivated with its old database issues them twice.
-- The CALs still there are the ones not removed, but never more than the source pack holds: a
-- decommissioned source holds nothing, and a source pack the ledger never knew has nothing on it.
SELECT
    'cals_left_on_source' AS rule,
    CASE WHEN s.status = 'activated' THEN 'error' ELSE 'warning' END AS severity,
    m.migration AS subject,
    concat(LEAST(m.not_removed, k.current_quantity),
           ' CALs of ', m.from_keypack, ' migrated to ', m.target, ' on ',
           CAST(CAST(m."at" AS DATE) AS VARCHAR), ' are still on ', m.source,
           CASE WHEN s.status = 'activated' THEN ', which is still activated'
                ELSE ', which is deactivated' END,
           ': remove them from the source') AS message,
    LEAST(m.not_removed, k.current_quantity) AS quantity,
    m.source,
    m.target,
    m.from_keypack,
    m.keypack,
    s.status AS source_status
FROM migrations m
JOIN keypacks k ON k.keypack = m.from_keypack
LEFT JOIN servers s ON s.server = m.source AND s.incarnation = m.source_incarnation
WHERE m.not_removed > 0
  AND k.current_quantity > 0
ORDER BY m.seq, m.keypack
