package idgraph.testserver;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.harness.Neo4j;
import org.neo4j.harness.Neo4jBuilders;
import org.neo4j.io.ByteUnit;

/**
 * Throw-away Neo4j server for idgraph's integration tests, driven by tests/neo4j_fixture.py.
 *
 * <p>Protocol: stdout carries exactly one line, {@code BOLT_URI=bolt://127.0.0.1:PORT}, printed once
 * the server accepts Bolt connections; everything else (Neo4j's own output, our diagnostics) goes to
 * stderr or to log files in the temporary working directory. The server stops, and deletes its store,
 * when stdin reaches EOF, so a parent that dies without cleaning up still takes the server down.
 *
 * <p>Auth is disabled (the harness default): the server listens on loopback only and holds only test
 * data. The HTTP connector is off; only Bolt is used.
 *
 * <p>Options (argument wins over environment variable):
 * <ul>
 *   <li>{@code --pagecache=SIZE} / {@code IDGRAPH_NEO4J_PAGECACHE}: page cache, e.g. 512m (default),
 *       so that tests run with a realistic cache rather than the harness' 8m.</li>
 *   <li>{@code --port=N} / {@code IDGRAPH_NEO4J_BOLT_PORT}: Bolt port, 0 (default) picks a free one.</li>
 * </ul>
 * Heap size is left to the JVM flags of the {@code java} command.
 */
public final class Neo4jTestServer {
    private static final String LOOPBACK = "127.0.0.1";
    private static final String DEFAULT_PAGECACHE = "512m";

    private Neo4jTestServer() {}

    public static void main(String[] args) {
        // Keep stdout for the protocol line only: anything printing to System.out goes to stderr.
        PrintStream protocol =
                new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        System.setOut(System.err);

        String pagecache = option(args, "pagecache", "IDGRAPH_NEO4J_PAGECACHE", DEFAULT_PAGECACHE);
        int port = Integer.parseInt(option(args, "port", "IDGRAPH_NEO4J_BOLT_PORT", "0"));

        Path workDir;
        try {
            workDir = Files.createTempDirectory("idgraph-neo4j-");
        } catch (IOException e) {
            fail("cannot create a working directory", e);
            return;
        }

        long started = System.nanoTime();
        Neo4j neo4j;
        try {
            neo4j = Neo4jBuilders.newInProcessBuilder(workDir)
                    .withDisabledServer()
                    .withConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.parse(pagecache))
                    .withConfig(BoltConnector.listen_address, new SocketAddress(LOOPBACK, port))
                    // Netty's default graceful shutdown idles ~10 s on stop; a test server need not wait.
                    .withConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                    .withConfig(GraphDatabaseInternalSettings.netty_server_shutdown_timeout, Duration.ofSeconds(5))
                    .build();
        } catch (RuntimeException e) {
            // The store is left behind on purpose: its logs/ explain the failure.
            fail("Neo4j failed to start; its working directory is kept: " + workDir, e);
            return;
        }

        AtomicBoolean stopped = new AtomicBoolean();
        Runnable stop = () -> {
            if (stopped.compareAndSet(false, true)) {
                long stopping = System.nanoTime();
                try {
                    neo4j.close();
                } finally {
                    deleteTree(workDir);
                }
                System.err.printf(
                        "[neo4j-test-server] stopped in %d ms%n", (System.nanoTime() - stopping) / 1_000_000);
            }
        };
        // Covers SIGTERM/SIGINT; the normal path is stdin EOF below.
        Runtime.getRuntime().addShutdownHook(new Thread(stop, "neo4j-test-server-shutdown"));

        int boltPort = neo4j.boltURI().getPort();
        System.err.printf(
                "[neo4j-test-server] ready in %d ms, bolt port %d, pagecache %s, workdir %s%n",
                (System.nanoTime() - started) / 1_000_000, boltPort, pagecache, workDir);
        protocol.println("BOLT_URI=bolt://" + LOOPBACK + ":" + boltPort);
        protocol.flush();

        waitForEof(System.in);
        stop.run();
        System.exit(0);
    }

    /** Reads from {@code --name=value}, then the environment, then the default. */
    private static String option(String[] args, String name, String envVar, String fallback) {
        String prefix = "--" + name + "=";
        for (String arg : args) {
            if (arg.startsWith(prefix)) {
                return arg.substring(prefix.length());
            }
        }
        String env = System.getenv(envVar);
        return env == null || env.isBlank() ? fallback : env.trim();
    }

    private static void waitForEof(InputStream in) {
        byte[] buffer = new byte[256];
        try {
            while (in.read(buffer) != -1) {
                // Input is ignored; only EOF matters.
            }
        } catch (IOException e) {
            System.err.println("[neo4j-test-server] stdin failed, stopping: " + e);
        }
    }

    private static void deleteTree(Path root) {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(root)) {
            paths.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
        } catch (IOException e) {
            System.err.println("[neo4j-test-server] could not delete " + root + ": " + e);
        }
    }

    private static void fail(String message, Throwable cause) {
        System.err.println("[neo4j-test-server] " + message);
        cause.printStackTrace(System.err);
        System.exit(1);
    }
}
