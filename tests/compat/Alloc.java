// Alloc.java - holds MB megabytes as 1 MiB byte arrays (with garbage churned between them), prints a checksum over them.
public class Alloc {
    public static void main(String[] args) {
        int mb = Integer.parseInt(args[0]);
        byte[][] held = new byte[mb][];
        long churn = 0;
        for (int i = 0; i < mb; i++) {
            held[i] = new byte[1 << 20];
            for (int j = 0; j < held[i].length; j += 4096)
                held[i][j] = (byte) (i + j / 4096);
            byte[] garbage = new byte[256 << 10];
            churn += garbage.length;
        }
        long sum = 0;
        for (int i = 0; i < mb; i++)
            for (int j = 0; j < held[i].length; j += 4096)
                sum += held[i][j];
        System.out.println(mb + " " + sum + " " + churn);
    }
}
