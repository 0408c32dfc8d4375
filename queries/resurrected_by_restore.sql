-- resurrected_by_restore: a restore from a backup taken before CALs were migrated away from the
-- server or removed from it brought those CALs back, and they are still there. Only CALs that
-- left by a migration or a removal between the backup and the restore count: CALs lost to a
-- rebuild or an earlier restore that come back are a recovery (lost_not_reinstalled's), not a
-- finding. quantity is per server, the sum over its packs.
-- Why it matters: the same CALs are now on two servers (or back after being given up), and the
-- restored server can issue them: they must be removed again.
SELECT
    'resurrected_by_restore' AS rule,
    'error' AS severity,
    k.server AS subject,
    concat(k.server, ' was restored on ', CAST(CAST(MAX(s.last_restored_at) AS DATE) AS VARCHAR),
           ' from a backup of ', CAST(CAST(MAX(s.last_backup_taken_at) AS DATE) AS VARCHAR),
           ' and holds again ', SUM(k.resurrected),
           ' CALs that were migrated away or removed after the backup (',
           string_agg(concat(k.keypack, ': ', k.resurrected), ', ' ORDER BY k.keypack),
           '): remove them again') AS message,
    SUM(k.resurrected) AS quantity,
    k.server,
    string_agg(k.keypack, ', ' ORDER BY k.keypack) AS keypacks,
    MAX(s.last_restored_at) AS restored_at,
    MAX(s.last_backup_taken_at) AS backup_taken_at,
    array_slice(array_distinct(array_agg(k.resurrected_by)), 1, 20) AS events
FROM keypacks k
JOIN servers s ON s.server = k.server AND s.incarnation = k.incarnation
WHERE k.resurrected > 0 AND k.current_quantity > 0
GROUP BY k.server
ORDER BY subject
