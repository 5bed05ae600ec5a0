// pgJDBC, the real driver of Java Lambda functions, through pgwarm: run by tests/tests/jdbc.rs.
// Four threads each hold a connection with server-side prepared statements from the first use
// (prepareThreshold=1), read DatabaseMetaData, insert in batches inside transactions, and check
// every answer, until the deadline. The test terminates the pooled backends midway: a statement
// killed while it ran may fail (SQLSTATE 57P01 or 08006, as directly) and its connection is
// opened again; any other error, or a wrong answer, fails the run.
//
// Usage: java -cp postgresql.jar:DIR JdbcLoad URL USER PASSWORD SECONDS

import java.sql.*;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;

public class JdbcLoad {
    static final AtomicLong ops = new AtomicLong();
    static final AtomicLong killed = new AtomicLong();
    static final ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();

    public static void main(String[] args) throws Exception {
        String url = args[0], user = args[1], password = args[2];
        long deadline = System.nanoTime() + Long.parseLong(args[3]) * 1_000_000_000L;
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", password);
        props.setProperty("prepareThreshold", "1");
        props.setProperty("sslmode", "disable");
        try (Connection c = DriverManager.getConnection(url, props); Statement s = c.createStatement()) {
            s.execute("create table if not exists jdbc_rows (thread int, n int, label text)");
        }
        ExecutorService pool = Executors.newFixedThreadPool(4);
        List<Future<?>> running = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            final int thread = t;
            running.add(pool.submit(() -> work(url, props, thread, deadline)));
        }
        for (Future<?> f : running) f.get();
        pool.shutdown();
        long rows;
        try (Connection c = DriverManager.getConnection(url, props); Statement s = c.createStatement();
             ResultSet r = s.executeQuery("select count(*) from jdbc_rows")) {
            r.next();
            rows = r.getLong(1);
        }
        System.out.println("jdbc: " + ops.get() + " operations, " + killed.get()
            + " statements killed mid-run, " + rows + " rows, " + failures.size() + " failures");
        for (String f : failures) System.out.println("failure: " + f);
        System.exit(failures.isEmpty() && ops.get() > 0 ? 0 : 1);
    }

    static void work(String url, Properties props, int thread, long deadline) {
        int n = 0;
        while (System.nanoTime() < deadline) {
            try (Connection c = DriverManager.getConnection(url, props)) {
                DatabaseMetaData meta = c.getMetaData();
                try (ResultSet tables = meta.getTables(null, "public", "jdbc_rows", null)) {
                    if (!tables.next()) failures.add("getMetaData found no jdbc_rows table");
                }
                PreparedStatement select = c.prepareStatement("select ?::int * 2, ?::text");
                PreparedStatement insert = c.prepareStatement("insert into jdbc_rows values (?, ?, ?)");
                while (System.nanoTime() < deadline) {
                    n++;
                    select.setInt(1, n);
                    select.setString(2, "t" + thread);
                    try (ResultSet r = select.executeQuery()) {
                        r.next();
                        if (r.getInt(1) != n * 2 || !r.getString(2).equals("t" + thread))
                            failures.add("wrong answer for " + n + ": " + r.getInt(1));
                    }
                    if (n % 10 == 0) {
                        c.setAutoCommit(false);
                        for (int i = 0; i < 5; i++) {
                            insert.setInt(1, thread);
                            insert.setInt(2, n);
                            insert.setString(3, "row " + i);
                            insert.addBatch();
                        }
                        int[] counts = insert.executeBatch();
                        if (counts.length != 5) failures.add("batch of " + counts.length);
                        c.commit();
                        c.setAutoCommit(true);
                    }
                    ops.incrementAndGet();
                }
            } catch (SQLException e) {
                String state = e.getSQLState();
                if ("57P01".equals(state) || "08006".equals(state) || "08003".equals(state)) {
                    killed.incrementAndGet();
                } else {
                    failures.add(state + " " + e.getMessage());
                }
            }
        }
    }
}
