-- lost_not_reinstalled: CALs still owed to a license server incarnation, per agreement,
-- requirement and CAL type. A rebuild owes what the server held just before it; a restore owes
-- what it held just before minus what it holds after (packs installed after the backup, and
-- every unissued CAL when the restore was onto another machine or a replaced OS). Later
-- installs for the same agreement, requirement and type pay it down, and so do CALs a later
-- restore brings back that resurrected_by_restore does not report. Debts end with the
-- incarnation (server.decommissioned).
-- Why it matters: the lost CALs were bought; the Microsoft Clearinghouse must re-issue them.
SELECT
    'lost_not_reinstalled' AS rule,
    'warning' AS severity,
    d.server AS subject,
    concat(d.server, ' lost ', d.owed, ' ', d.requirement, ' ',
           replace(d.cal_type, '_', '-'), ' CALs of ', d.agreement, ' on ',
           CAST(CAST(d.since AS DATE) AS VARCHAR),
           ' that are not re-installed: ask the Clearinghouse to re-issue them') AS message,
    d.owed AS quantity,
    d.server,
    d.incarnation,
    d.agreement,
    d.requirement,
    d.cal_type,
    array_slice(d.events, 1, 20) AS events
FROM debts d
WHERE d.owed > 0
ORDER BY d.server, d.incarnation, d.agreement, d.requirement, d.cal_type
