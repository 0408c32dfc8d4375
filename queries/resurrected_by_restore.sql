-- resurrected_by_restore: a restore from a backup taken before CALs were migrated away from the
-- server or removed from it brought those CALs back, and they are still there. Only CALs that
-- left by a migration or a removal between the backup and the restore count: CALs lost to a
-- rebuild or an earlier restore that come back are a recovery (lost_not_reinstalled's), not a
-- finding. One finding per pack; quantity is what came back and is still there.
-- Why it matters: the same CALs are now on two servers (or back after being given up), and the
-- restored server can issue them: they must be removed again.
SELECT
    'resurrected_by_restore' AS rule,
    'error' AS severity,
    k.keypack AS subject,
    concat(k.server, ' was restored on ', CAST(CAST(s.last_restored_at AS DATE) AS VARCHAR),
           ' from a backup of ', CAST(CAST(s.last_backup_taken_at AS DATE) AS VARCHAR),
           ' and holds again ', k.resurrected, ' CALs of ', k.keypack,
           ' that were migrated away or removed after the backup: remove them again') AS message,
    k.resurrected AS quantity,
    k.server,
    k.keypack,
    s.last_restored_at AS restored_at,
    s.last_backup_taken_at AS backup_taken_at,
    [k.resurrected_by] AS events
FROM keypacks k
JOIN servers s ON s.server = k.server AND s.incarnation = k.incarnation
WHERE k.resurrected > 0 AND k.current_quantity > 0
ORDER BY k.server, k.keypack
