//! The fast NUMERIC decoder (`store::PgDecimal`) gives exactly what sqlx's `Decimal` decoder gives
//! (value and scale), for values read back from a real PostgreSQL.

use std::str::FromStr;

use rust_decimal::Decimal;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use trading_agent::store::PgDecimal;
use trading_agent_tests::postgres::TempPostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_numeric_decoding_matches_sqlx() {
    trading_agent::install_crypto_provider();
    let (_pg, url) = tokio::task::spawn_blocking(|| {
        let pg = TempPostgres::start_new().unwrap();
        let url = pg.create_database("numeric").unwrap();
        (pg, url)
    })
    .await
    .unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(PgConnectOptions::from_str(&url).unwrap())
        .await
        .unwrap();
    let mut texts: Vec<String> = [
        "0",
        "0.00000000",
        "-0.000",
        "1",
        "-1",
        "10000",
        "0.0001",
        "0.00001",
        "123.45",
        "100.50",
        "-98765.43210000",
        "1e20",
        "12345678901234567890.12345678",
        "79228162514264337593543950335",
        "79228162514264337593543950336",
        "0.0000000000000000000000000001",
        "1e-30",
        "NaN",
        "99999999.99999999",
        "0.10000000",
        "5000.0000",
        "-0.5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut digits: Vec<Option<i32>> = vec![None; texts.len()];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let whole = x % 10u64.pow((x >> 20) as u32 % 12);
        let fraction = (x >> 8) % 100_000_000;
        let sign = if x & 1 == 0 { "" } else { "-" };
        texts.push(format!("{sign}{whole}.{fraction:08}"));
        digits.push(None);
        texts.push(format!("{sign}{whole}.{fraction:08}"));
        digits.push(Some((x % 9) as i32));
    }
    // Bound parameters make sqlx prepare the statement: results come in the binary format.
    let rows = sqlx::query(
        "SELECT CASE WHEN d IS NULL THEN v::numeric ELSE round(v::numeric, d) END
         FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS t(v, d, n) ORDER BY n",
    )
    .bind(&texts)
    .bind(&digits)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), texts.len());
    let mut fast_paths = 0;
    for (row, text) in rows.iter().zip(&texts) {
        let ours = row.try_get::<PgDecimal, _>(0).map(|d| d.0);
        let sqlx = row.try_get::<Decimal, _>(0);
        match (&ours, &sqlx) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "{text}");
                assert_eq!(a.scale(), b.scale(), "{text}");
                assert_eq!(a.is_sign_negative(), b.is_sign_negative(), "{text}");
                fast_paths += 1;
            }
            (Err(_), Err(_)) => {}
            _ => panic!("{text}: ours {ours:?}, sqlx {sqlx:?}"),
        }
    }
    assert!(fast_paths > 6000);
    let raw = sqlx::query("SELECT '123.45'::numeric WHERE $1")
        .bind(true)
        .fetch_one(&pool)
        .await
        .unwrap();
    let bytes = <&[u8] as sqlx::Decode<sqlx::Postgres>>::decode(raw.try_get_raw(0).unwrap());
    let decoded = trading_agent::store::numeric_from_binary(bytes.unwrap()).unwrap();
    assert_eq!(decoded.to_string(), "123.45");
    pool.close().await;
}
