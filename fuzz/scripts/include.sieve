require ["include", "fileinto"];
include :global "lists";
include :global :once "lists";
include :personal :optional "mine";
include :optional "not-there";
