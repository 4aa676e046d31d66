require ["fileinto"];

# Lets a test steer a message into the Junk folder without a spam filter.
if header :is "X-Test-Junk" "yes" {
    fileinto "Junk";
    stop;
}
