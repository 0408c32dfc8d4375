-- true_up: for each agreement, version and CAL type, per anniversary year, what was purchased
-- by the end of the year, the peak installed and the peak active issued during the year, and
-- the shortfall to order.
-- Why it matters: at a true-up the customer orders for the peak used since the last true-up,
-- not for the number in use on the day. The shortfall is the larger peak (installed or active
-- issued) minus what was purchased by the year's end, never below zero.
WITH installed_levels AS (
    SELECT agreement, entitlement_version AS product_version, cal_type, "at", delta,
           SUM(delta) OVER (
               PARTITION BY agreement, entitlement_version, cal_type
               ORDER BY "at", seq
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS level
    FROM quantity_changes
),
cal_edges AS (
    SELECT k.agreement, k.entitlement_version AS product_version, k.cal_type,
           c.issued_at AS "at", 1 AS delta
    FROM cals c JOIN keypacks k ON k.keypack = c.keypack
    UNION ALL
    SELECT k.agreement, k.entitlement_version, k.cal_type,
           LEAST(c.expires_at, c.revoked_at, c.cleared_at), -1
    FROM cals c JOIN keypacks k ON k.keypack = c.keypack
    WHERE COALESCE(c.expires_at, c.revoked_at, c.cleared_at) IS NOT NULL
),
active_levels AS (
    SELECT agreement, product_version, cal_type, "at", delta,
           SUM(delta) OVER (
               PARTITION BY agreement, product_version, cal_type
               ORDER BY "at", delta
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS level
    FROM cal_edges
),
peak_installed AS (
    SELECT p.agreement, p.product_version, p.cal_type, p.period_start,
           GREATEST(
               COALESCE(SUM(CASE WHEN l."at" < p.period_start THEN l.delta END), 0),
               COALESCE(MAX(CASE WHEN l."at" >= p.period_start AND l."at" < p.period_end
                                 THEN l.level END), 0)) AS peak_installed
    FROM true_up_periods p
    LEFT JOIN installed_levels l
      ON l.agreement = p.agreement AND l.product_version = p.product_version
     AND l.cal_type = p.cal_type
    GROUP BY p.agreement, p.product_version, p.cal_type, p.period_start
),
peak_active AS (
    SELECT p.agreement, p.product_version, p.cal_type, p.period_start,
           GREATEST(
               COALESCE(SUM(CASE WHEN l."at" < p.period_start THEN l.delta END), 0),
               COALESCE(MAX(CASE WHEN l."at" >= p.period_start AND l."at" < p.period_end
                                 THEN l.level END), 0)) AS peak_active_issued
    FROM true_up_periods p
    LEFT JOIN active_levels l
      ON l.agreement = p.agreement AND l.product_version = p.product_version
     AND l.cal_type = p.cal_type
    GROUP BY p.agreement, p.product_version, p.cal_type, p.period_start
),
purchased AS (
    SELECT p.agreement, p.product_version, p.cal_type, p.period_start,
           SUM(pu.quantity) AS purchased
    FROM true_up_periods p
    JOIN purchases pu
      ON pu.agreement = p.agreement AND pu.product_version = p.product_version
     AND pu.cal_type = p.cal_type AND pu."at" < p.period_end
    GROUP BY p.agreement, p.product_version, p.cal_type, p.period_start
)
SELECT
    p.agreement,
    p.product_version,
    p.cal_type,
    p.anniversary,
    p.period_start,
    p.period_end,
    COALESCE(pu.purchased, 0) AS purchased,
    i.peak_installed,
    a.peak_active_issued,
    GREATEST(0, GREATEST(i.peak_installed, a.peak_active_issued) - COALESCE(pu.purchased, 0))
        AS shortfall
FROM true_up_periods p
JOIN peak_installed i
  ON i.agreement = p.agreement AND i.product_version = p.product_version
 AND i.cal_type = p.cal_type AND i.period_start = p.period_start
JOIN peak_active a
  ON a.agreement = p.agreement AND a.product_version = p.product_version
 AND a.cal_type = p.cal_type AND a.period_start = p.period_start
LEFT JOIN purchased pu
  ON pu.agreement = p.agreement AND pu.product_version = p.product_version
 AND pu.cal_type = p.cal_type AND pu.period_start = p.period_start
ORDER BY p.agreement, p.product_version, p.cal_type, p.period_start
