-- version_above_server: a key pack's version is newer than its license server's OS version,
-- such as 2022 CALs on a 2019 license server.
-- Why it matters: a license server only installs CALs of its own version or older. A 2022
-- entitlement goes on a 2019 server only as a downgrade key issued by Microsoft licensing
-- support, installed as 2019. Versions compare as text: "2008" < "2008R2" < "2012" < ... < "2025".
SELECT
    'version_above_server' AS rule,
    'error' AS severity,
    k.keypack AS subject,
    concat('key pack ', k.keypack, ' holds ', k.current_quantity, ' ', k.product_version, ' ',
           replace(k.cal_type, '_', '-'), ' CALs on ', k.server,
           ', a Windows Server ', s.os_version, ' license server') AS message,
    k.current_quantity AS quantity,
    k.server,
    k.product_version,
    s.os_version
FROM keypacks k
JOIN servers s ON s.server = k.server AND s.incarnation = k.incarnation
WHERE k.current_quantity > 0
  AND s.os_version IS NOT NULL
  AND k.product_version > s.os_version
ORDER BY subject
