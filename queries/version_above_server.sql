-- version_above_server: a key pack's version is newer than the OS version of the license
-- server incarnation holding it, such as 2022 CALs on a 2019 license server. Versions compare
-- as levels: 2008 and 2008 R2 are one. No finding while the server's OS version is unknown.
-- Why it matters: a license server only installs CALs of its own version or older. A 2022
-- entitlement goes on a 2019 server only as a downgrade key issued by Microsoft licensing
-- support, installed as 2019.
SELECT
    'version_above_server' AS rule,
    'error' AS severity,
    k.keypack AS subject,
    concat('key pack ', k.keypack, ' holds ', k.current_quantity, ' ', k.product_version, ' ',
           replace(k.cal_type, '_', '-'), ' CALs on ', k.server,
           ', a Windows Server ', s.os_version, ' license server') AS message,
    k.current_quantity AS quantity,
    k.server,
    k.keypack,
    k.product_version,
    s.os_version,
    [k.installed_id] AS events
FROM keypacks k
JOIN servers s ON s.server = k.server AND s.incarnation = k.incarnation
WHERE k.current_quantity > 0
  AND s.os_version IS NOT NULL
  AND k.level > CASE WHEN s.os_version = '2008R2' THEN '2008' ELSE s.os_version END
ORDER BY subject
