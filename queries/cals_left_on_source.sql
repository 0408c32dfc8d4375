-- cals_left_on_source: a migration whose CALs are still on the source pack. Removals from that
-- pack after the migration (keypack.removed, source.cals_removed) cover the pack's migrations
-- oldest first, a source.cals_removed naming its migration covers that one first, and
-- source_removed covers its own. Error while the source is activated, warning otherwise.
-- Why it matters: using the source with CALs that were migrated is a licence violation, and a
-- source restored, powered back on or reactivated with its old database issues them twice.
-- The CALs still there are the ones not covered, but never more than the source pack holds: a
-- decommissioned source holds nothing, and a source pack the ledger never knew has nothing on it.
SELECT
    'cals_left_on_source' AS rule,
    CASE WHEN s.status = 'activated' THEN 'error' ELSE 'warning' END AS severity,
    m.migration AS subject,
    concat(LEAST(m.not_removed, k.current_quantity),
           ' CALs of ', m.from_keypack, ' migrated to ', m.target, ' on ',
           CAST(CAST(m."at" AS DATE) AS VARCHAR), ' are still on ', m.source,
           ', which is ', replace(COALESCE(s.status, 'never_activated'), '_', ' '),
           ': remove them from the source') AS message,
    LEAST(m.not_removed, k.current_quantity) AS quantity,
    m.source,
    m.target,
    m.from_keypack,
    m.keypack,
    s.status AS source_status,
    array_slice(array_concat([m.migration], m.removals), 1, 20) AS events
FROM migrations m
JOIN keypacks k ON k.keypack = m.from_keypack
LEFT JOIN servers s ON s.server = m.source AND s.incarnation = m.source_incarnation
WHERE m.not_removed > 0
  AND k.current_quantity > 0
ORDER BY m.seq, m.keypack
