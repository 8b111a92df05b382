require ["copy"];
redirect :copy "copy@remote.example";
redirect "elsewhere@remote.example";
