// Hold.java - a JVM program (run as `java -Xmx... Hold.java MB`) that holds MB mebibytes in 1 MiB arrays, touched page by page, and prints a checksum.
public class Hold {
    public static void main(String[] args) throws Exception {
        int mb = Integer.parseInt(args[0]);
        byte[][] held = new byte[mb][];
        for (int i = 0; i < mb; i++) {
            held[i] = new byte[1 << 20];
            for (int j = 0; j < held[i].length; j += 4096)
                held[i][j] = (byte) (i + j / 4096);
        }
        long sum = 0;
        for (int i = 0; i < mb; i++)
            for (int j = 0; j < held[i].length; j += 4096)
                sum += held[i][j];
        System.out.println("done " + mb + " " + sum);
    }
}
