-- migration_unknown_pack: a migration whose from_keypack the ledger does not know and that does
-- not say what its CALs are (agreement, product_version and cal_type). One finding per
-- migration.
-- Why it matters: its CALs cannot be counted anywhere, so every rule is blind to them: record
-- the source pack, or retract the migration and record it again with the wizard's inputs.
SELECT
    'migration_unknown_pack' AS rule,
    'warning' AS severity,
    m.migration AS subject,
    concat(m.quantity, ' CALs migrated from ', m.from_keypack, ' on ', m.source, ' to ',
           m.keypack, ' on ', m.target, ' on ', CAST(CAST(m."at" AS DATE) AS VARCHAR),
           ' cannot be counted: the ledger does not know ', m.from_keypack,
           ' and the migration does not give its agreement, version and CAL type') AS message,
    m.quantity AS quantity,
    m.source,
    m.target,
    m.from_keypack,
    m.keypack,
    [m.migration] AS events
FROM migrations m
WHERE NOT m.pack_known
ORDER BY m.seq
