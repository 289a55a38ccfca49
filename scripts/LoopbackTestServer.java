// Temporal's time-skipping test server (the one Temporal's SDKs start in tests), bound to loopback.
// Upstream's main (io.temporal.testserver.TestServer) listens on every interface, and the server
// has no authentication; scripts/ensure-test-server compiles this file against the same jars.

import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.temporal.internal.testservice.GRPCServerHelper;
import io.temporal.internal.testservice.TestServicesStarter;
import java.net.InetSocketAddress;

public final class LoopbackTestServer {
  private static final String TIME_SKIPPING_FLAG = "--enable-time-skipping";

  public static void main(String[] args) throws Exception {
    // The arguments of upstream's main and of the native binary the SDKs download:
    // <port> [--enable-time-skipping]. The Python SDK passes the port alone.
    int port = args.length >= 1 && args.length <= 2 ? parsePort(args[0]) : -1;
    boolean validFlag = args.length < 2 || TIME_SKIPPING_FLAG.equalsIgnoreCase(args[1]);
    if (port < 0 || !validFlag) {
      System.err.println("usage: LoopbackTestServer <port 0-65535> [" + TIME_SKIPPING_FLAG + "]");
      System.exit(2);
    }
    // Like upstream: time skipping starts locked, and a client unlocks it while it waits.
    boolean lockTimeSkipping = args.length < 2;
    TestServicesStarter services = new TestServicesStarter(lockTimeSkipping, 0);
    NettyServerBuilder builder =
        NettyServerBuilder.forAddress(
            new InetSocketAddress("127.0.0.1", port), InsecureServerCredentials.create());
    GRPCServerHelper.registerServicesAndHealthChecks(services.getServices(), builder);
    Server server = builder.build().start();
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  server.shutdownNow();
                  services.close();
                }));
    server.awaitTermination();
  }

  private static int parsePort(String text) {
    try {
      int port = Integer.parseInt(text);
      return port >= 0 && port <= 65535 ? port : -1;
    } catch (NumberFormatException e) {
      return -1;
    }
  }
}
